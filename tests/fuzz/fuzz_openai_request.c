/* libFuzzer target: OpenAI request bodies (completions and chat), plus the
 * chat template path for parsed messages and the stop matcher over the
 * prompt text. Any input must give 0 or a 4xx/5xx error, never a crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/chat_template.h"
#include "api/openai_request.h"
#include "api/openai_stop.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        log_set_level(LOG_ERROR);
        quiet = 1;
    }
    for (int k = 0; k < 2; k++) {
        oai_request r;
        oai_error e;
        if (oai_request_parse(&r, k ? OAI_CHAT : OAI_COMPLETION, (const char *)data, size, &e) != 0) {
            if (e.status < 400 || e.status > 599 || !e.message[0])
                abort();
            continue;
        }
        if (k == 1) {
            chat_msg *m = calloc(r.n_messages, sizeof *m);
            if (m) {
                for (size_t i = 0; i < r.n_messages; i++) {
                    m[i].role = oai_role_name(r.messages[i].role);
                    m[i].content = r.messages[i].content;
                }
                chat_tmpl t = chat_template_detect(r.chat_template);
                if (t == CHAT_TMPL_UNKNOWN)
                    t = CHAT_TMPL_CHATML;
                char err[64];
                size_t len;
                free(chat_template_render(t, m, r.n_messages, r.add_generation_prompt, r.continue_final_message, &len,
                                          err, sizeof err));
                free(m);
            }
        } else if (r.n_stop && r.prompts[0].text) {
            oai_stop *s = oai_stop_new((const char *const *)r.stop, r.n_stop, r.include_stop_str_in_output);
            if (s) {
                const char *o;
                size_t ol;
                const char *t = r.prompts[0].text;
                size_t n = strlen(t);
                for (size_t i = 0; i < n && oai_stop_feed(s, t + i, 1, &o, &ol) < 0; i++)
                    ;
                oai_stop_flush(s, &o, &ol);
                oai_stop_free(s);
            }
        }
        oai_request_free(&r);
    }
    return 0;
}
