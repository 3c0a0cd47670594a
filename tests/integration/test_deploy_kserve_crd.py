#!/usr/bin/env python3
"""Validates the KServe overlay's ServingRuntime and InferenceService against
the CRDs' openAPIV3Schema copied in ../shared/testdata/kserve/.

Two checks per object, as the API server would apply them:
  1. JSON-schema validation (Draft 7 over the structural schema: types,
     required fields, enums);
  2. pruning: a field the schema does not declare is silently dropped by the
     API server, so a misspelt field (say `volumeMount`) would vanish without
     an error. Every field of ours must be declared.
Deliberately broken copies must fail each check. Skips (77) when ../shared
or python3-jsonschema is missing.
"""

import copy
import os
import sys

SRC = os.environ.get("WARD_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tools"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from wardlib import Check, need_shared  # noqa: E402

try:
    import jsonschema
    import yaml
except ImportError as e:
    print("SKIP: %s (scripts/deps.sh installs python3-jsonschema and python3-yaml)" % e)
    sys.exit(77)

import kustomize_lite  # noqa: E402

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the InferenceService CRD is ~2 MB

CRDS = {
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
}

c = Check("test_deploy_kserve_crd")


def load_schema(path, kind, api_version):
    with open(path, "rb") as f:
        crd = yaml.load(f, Loader=Loader)
    if crd["spec"]["names"]["kind"] != kind:
        raise ValueError("%s is not the %s CRD" % (path, kind))
    group = crd["spec"]["group"]
    for v in crd["spec"]["versions"]:
        if "%s/%s" % (group, v["name"]) == api_version and v.get("served"):
            return v["schema"]["openAPIV3Schema"]
    raise ValueError("%s does not serve %s" % (path, api_version))


def schema_errors(obj, schema):
    v = jsonschema.Draft7Validator(schema)
    return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path), e.message)
            for e in v.iter_errors(obj)]


def pruned_fields(obj, schema, path=""):
    """Paths of fields the structural schema does not declare (and the API
    server would therefore drop)."""
    out = []
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return out
    if isinstance(obj, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        if props is None and isinstance(addl, dict):
            for k, v in obj.items():
                out += pruned_fields(v, addl, "%s/%s" % (path, k))
            return out
        if props is None:
            return out      # a free-form object (e.g. metadata)
        for k, v in obj.items():
            if k in props:
                out += pruned_fields(v, props[k], "%s/%s" % (path, k))
            else:
                out.append("%s/%s" % (path, k))
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            out += pruned_fields(v, schema["items"], "%s/%d" % (path, i))
    return out


def problems(obj, schema):
    return schema_errors(obj, schema) + ["field would be pruned: " + p for p in pruned_fields(obj, schema)]


def main():
    shared = need_shared()
    crd_dir = os.path.join(shared, "testdata", "kserve")
    if not os.path.isdir(crd_dir):
        print("SKIP: %s is missing" % crd_dir)
        sys.exit(77)
    objs = kustomize_lite.render(os.path.join(SRC, "deploy", "overlays", "kserve"))
    byk = {}
    for o in objs:
        if o["kind"] in CRDS:
            byk[o["kind"]] = o
    c.eq(sorted(byk), sorted(CRDS), "the overlay has one ServingRuntime and one InferenceService")
    schemas = {}
    for kind, fname in CRDS.items():
        if kind not in byk:
            continue
        schemas[kind] = load_schema(os.path.join(crd_dir, fname), kind, byk[kind]["apiVersion"])
        errs = problems(byk[kind], schemas[kind])
        for e in errs:
            print("  %s: %s" % (kind, e))
        c.ok(not errs, "%s %s validates against its CRD" % (kind, byk[kind]["metadata"]["name"]))

    # The same validation must reject broken objects.
    if "ServingRuntime" in schemas:
        sr, s = byk["ServingRuntime"], schemas["ServingRuntime"]
        cases = {
            "container without a name": lambda o: o["spec"]["containers"][0].pop("name"),
            "format without a name": lambda o: o["spec"]["supportedModelFormats"][0].pop("name"),
            "protocolVersions not a list": lambda o: o["spec"].update(protocolVersions="v1"),
            "no containers": lambda o: o["spec"].pop("containers"),
            "misspelt field": lambda o: o["spec"]["containers"][0].update(volumeMount=[]),
            "port as a string": lambda o: o["spec"]["containers"][0]["ports"][0].update(containerPort="http"),
        }
        for what, brk in cases.items():
            bad = copy.deepcopy(sr)
            brk(bad)
            c.ok(problems(bad, s), "ServingRuntime schema rejects: " + what)
    if "InferenceService" in schemas:
        isvc, s = byk["InferenceService"], schemas["InferenceService"]
        cases = {
            "modelFormat without a name": lambda o: o["spec"]["predictor"]["model"]["modelFormat"].pop("name"),
            "no predictor": lambda o: o["spec"].pop("predictor"),
            "misspelt storageUri": lambda o: o["spec"]["predictor"]["model"].update(storageURI="s3://x"),
            "minReplicas as a string": lambda o: o["spec"]["predictor"].update(minReplicas="one"),
        }
        for what, brk in cases.items():
            bad = copy.deepcopy(isvc)
            brk(bad)
            c.ok(problems(bad, s), "InferenceService schema rejects: " + what)
    c.done()


if __name__ == "__main__":
    main()
