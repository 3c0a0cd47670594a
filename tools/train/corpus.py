#!/usr/bin/python3
"""Training corpus for ward's default model, written by the project.

Every sentence below was written for ward (no third-party text), so the
corpus and the model trained on it can be shipped with the repository.

The corpus is deliberately simple: short, regular, factual English about
the things ward users ask about (Kubernetes, containers, model serving,
security, Linux, ...) plus a few everyday topics and short stories. A small
model learns such text quickly, which is what lets a ~2M-parameter model
trained for under an hour on one CPU core answer "What is Kubernetes?" in
fluent sentences.

Documents come in three shapes:
  - completion: "What is Kubernetes? Kubernetes is ..." (the seed's prompt)
  - chat: ChatML turns (<|im_start|>user ... <|im_end|>), the template the
    model's GGUF declares, so /v1/chat/completions answers the same way
  - prose: a paragraph or a short story with no question

Usage: corpus.py [--seed N] [--docs N] > corpus.txt   (one JSON doc per line)
"""
import argparse
import json
import random
import re

# ---------------------------------------------------------------------------
# Knowledge base: name, question subject, definitions, facts (in a sensible
# reading order: a document keeps the order of the facts it picks).
# "{a|b}" picks one alternative at random.
# ---------------------------------------------------------------------------
TOPICS = [
    dict(name="Kubernetes", q="What is Kubernetes?",
         defs=["Kubernetes is an open source system that runs and manages containers on a group of computers.",
               "Kubernetes is an open source platform for running containers at scale.",
               "Kubernetes is a container orchestration system. It decides where containers run and keeps them running."],
         facts=["It was first built at Google and is now maintained by the Cloud Native Computing Foundation.",
                "The name Kubernetes comes from a Greek word that means helmsman, the person who steers a ship.",
                "People often write it as K8s, because there are eight letters between the K and the s.",
                "A Kubernetes cluster is made of a control plane and a set of worker nodes.",
                "You describe the state you want in a YAML file, and Kubernetes works to make the cluster match it.",
                "If a container stops, Kubernetes starts a new one, so the application keeps working.",
                "Kubernetes can add more copies of an application when the load goes up, and remove them when it goes down.",
                "It groups containers into pods and gives each service a stable name and address on the network.",
                "Many companies use Kubernetes to run web sites, APIs, batch jobs and machine learning models.",
                "You talk to Kubernetes with the kubectl command or through its API."]),
    dict(name="a container", q="What is a container?", alt="What are containers?",
         defs=["A container is a small, isolated package that holds an application and everything it needs to run.",
               "A container is a way to run a program in its own isolated space on a shared operating system."],
         facts=["A container includes the program, its libraries and its settings.",
                "Containers share the kernel of the host, so they start in less than a second and use little memory.",
                "A container runs from an image, which is a read-only template of its files.",
                "The same image runs the same way on a laptop, on a server and in the cloud.",
                "On Linux, containers are built from namespaces and control groups in the kernel.",
                "Tools such as Podman and Docker build images and run containers.",
                "Containers make it easy to ship software and to run many applications on one machine."]),
    dict(name="a pod", q="What is a pod in Kubernetes?", alt="What is a pod?",
         defs=["A pod is the smallest unit that Kubernetes runs.",
               "In Kubernetes, a pod is a group of one or more containers that run together on the same node."],
         facts=["The containers in a pod share the same network address and can share storage volumes.",
                "Most pods hold a single container, but some add a helper container next to the main one.",
                "Pods are short lived: when a pod fails, Kubernetes creates a new pod to replace it.",
                "You rarely create pods by hand. A Deployment creates them for you.",
                "Each pod gets its own IP address inside the cluster."]),
    dict(name="a node", q="What is a node in Kubernetes?", alt="What is a Kubernetes node?",
         defs=["A node is a machine in a Kubernetes cluster that runs pods.",
               "In Kubernetes, a node is a worker machine, either a physical server or a virtual machine."],
         facts=["Every node runs the kubelet, an agent that starts and watches the containers of its pods.",
                "Every node also runs a container runtime that pulls images and runs containers.",
                "The scheduler in the control plane decides which node runs each new pod.",
                "When a node fails, its pods are started again on other nodes."]),
    dict(name="a Deployment", q="What is a Deployment in Kubernetes?", alt="What is a Kubernetes Deployment?",
         defs=["A Deployment is a Kubernetes object that keeps a set number of identical pods running.",
               "In Kubernetes, a Deployment describes an application and how many copies of it should run."],
         facts=["You set the number of replicas, and Kubernetes keeps that many pods running.",
                "When you change the image, the Deployment replaces the old pods with new ones a few at a time.",
                "This is called a rolling update, and it lets you update an application without downtime.",
                "If the new version does not work, you can roll back to the previous one."]),
    dict(name="a Service", q="What is a Service in Kubernetes?", alt="What is a Kubernetes Service?",
         defs=["A Service is a Kubernetes object that gives a set of pods one stable name and address.",
               "In Kubernetes, a Service sends network traffic to the right pods."],
         facts=["Pods come and go, but the address of the Service stays the same.",
                "The Service spreads requests across all the healthy pods that match its label selector.",
                "Other applications in the cluster can reach the Service by its DNS name.",
                "To reach a Service from outside the cluster, you can use an Ingress, a load balancer or an OpenShift Route."]),
    dict(name="a namespace", q="What is a namespace in Kubernetes?", alt="What is a Kubernetes namespace?",
         defs=["A namespace is a way to divide one Kubernetes cluster into separate spaces.",
               "In Kubernetes, a namespace is a named group of objects inside a cluster."],
         facts=["Teams often get their own namespace, so their objects do not mix with those of other teams.",
                "Names must be unique inside a namespace, but two namespaces can use the same names.",
                "Access rules and resource quotas can be set for each namespace."]),
    dict(name="a Secret", q="What is a Secret in Kubernetes?", alt="What is a Kubernetes Secret?",
         defs=["A Secret is a Kubernetes object that holds a small piece of sensitive data, such as a password, a token or a key.",
               "In Kubernetes, a Secret stores sensitive values apart from the application code."],
         facts=["A pod can read a Secret as a file in a mounted volume or as an environment variable.",
                "When a Secret mounted as a volume changes, the kubelet updates the files in the pod.",
                "This lets a server pick up a new API key without a restart.",
                "Access to Secrets should be limited with role based access control."]),
    dict(name="OpenShift", q="What is OpenShift?", alt="What is Red Hat OpenShift?",
         defs=["OpenShift is a Kubernetes platform from Red Hat.",
               "OpenShift is an enterprise distribution of Kubernetes made by Red Hat."],
         facts=["It adds tools for developers, a web console, built-in monitoring and stronger security defaults.",
                "By default, OpenShift runs containers as a random user that is not root.",
                "OpenShift uses Routes to expose services to the outside world, often with TLS.",
                "It runs in a data center, in public clouds and at the edge.",
                "OpenShift AI adds tools to build, train and serve machine learning models on OpenShift."]),
    dict(name="OpenShift AI", q="What is OpenShift AI?", alt="What is Red Hat OpenShift AI?",
         defs=["OpenShift AI is a platform from Red Hat for building, training and serving machine learning models on OpenShift.",
               "Red Hat OpenShift AI is a set of tools for data scientists and developers that runs on OpenShift."],
         facts=["It gives data scientists workbenches with notebooks to explore data and train models.",
                "It uses KServe to serve models behind an HTTP endpoint.",
                "A model server can be protected with token authorization, so only clients with a valid token can use it.",
                "Models are often stored in S3 object storage and loaded when the server starts."]),
    dict(name="KServe", q="What is KServe?",
         defs=["KServe is an open source project for serving machine learning models on Kubernetes.",
               "KServe is a Kubernetes tool that turns a trained model into a network service."],
         facts=["You create an InferenceService object, and KServe starts a model server for it.",
                "A ServingRuntime describes which container image serves which model formats.",
                "KServe can download the model from S3 or another storage location before the server starts.",
                "It can scale the model server up and down with the number of requests."]),
    dict(name="Authorino", q="What is Authorino?",
         defs=["Authorino is an open source authorization service for Kubernetes.",
               "Authorino is a tool that checks who is calling an API and whether the call is allowed."],
         facts=["It works next to an API gateway and checks each request before it reaches the service.",
                "It can check API keys, bearer tokens, JSON Web Tokens and other credentials.",
                "A request without a valid credential is rejected with the status 401 Unauthorized.",
                "OpenShift AI uses Authorino to protect model servers with tokens."]),
    dict(name="ward", q="What is ward?",
         defs=["ward is a small and secure model server written in C.",
               "ward is an open source server that runs language models and answers requests over HTTP."],
         facts=["It speaks the OpenAI API, so clients that work with vLLM also work with ward.",
                "It checks a bearer token on every request before any work is done.",
                "A request without a valid API key gets the answer 401 Unauthorized.",
                "It loads models in the GGUF format and runs them on the CPU.",
                "It writes a decision log, so you can see who called the server and why a request was allowed or denied.",
                "You can rotate its API keys without a restart."]),
    dict(name="a model server", q="What is a model server?",
         defs=["A model server is a program that loads a trained model and answers prediction requests over the network.",
               "A model server makes a machine learning model available as a web service."],
         facts=["Clients send input, such as a prompt, and the server sends back the result of the model.",
                "A good model server handles many requests at the same time.",
                "It also reports its health, so the platform knows when it is ready.",
                "vLLM, KServe runtimes and ward are examples of model servers.",
                "A model server on a shared network should require a token, so that only allowed clients can use the model."]),
    dict(name="vLLM", q="What is vLLM?",
         defs=["vLLM is an open source engine for serving large language models.",
               "vLLM is a fast inference server for large language models."],
         facts=["It serves many requests at once by batching them on the GPU.",
                "It offers an HTTP API that follows the OpenAI API.",
                "Clients send requests to paths such as /v1/completions and /v1/chat/completions.",
                "It is one of the model servers that OpenShift AI can use."]),
    dict(name="a language model", q="What is a language model?", alt="What is a large language model?",
         defs=["A language model is a program that predicts the next word in a piece of text.",
               "A language model is a neural network trained on text to continue text."],
         facts=["It reads the text as tokens and gives a probability for every possible next token.",
                "To write an answer, it picks one token, adds it to the text and repeats.",
                "Large language models are trained on huge amounts of text and have billions of parameters.",
                "Small language models are less capable, but they are fast and can run on a normal computer.",
                "A language model can answer questions, write summaries and help with code."]),
    dict(name="a token", q="What is a token in a language model?", alt="What are tokens?",
         defs=["A token is a small piece of text, such as a word or a part of a word, that a language model reads and writes.",
               "In a language model, a token is one unit of text from the vocabulary of the model."],
         facts=["A tokenizer splits text into tokens and turns each token into a number.",
                "Common words are usually one token, and rare words are split into several tokens.",
                "The length of a prompt and the cost of a request are counted in tokens.",
                "The max_tokens setting limits how many tokens the model may write."]),
    dict(name="machine learning", q="What is machine learning?",
         defs=["Machine learning is a way to make computers learn patterns from data instead of following fixed rules.",
               "Machine learning is a field of computer science in which programs improve with data."],
         facts=["A model is trained on many examples and then makes predictions on new data.",
                "It is used for search, translation, image recognition and language models.",
                "Training needs a lot of data and computing power, while using a trained model is much cheaper.",
                "The quality of a model depends on the quality of its data."]),
    dict(name="a neural network", q="What is a neural network?",
         defs=["A neural network is a machine learning model made of layers of simple connected units.",
               "A neural network is a model that turns numbers into other numbers through many layers of weights."],
         facts=["Each layer multiplies its input by a matrix of weights and passes the result to the next layer.",
                "The weights are learned during training by a method called gradient descent.",
                "Modern language models use a kind of neural network called a transformer."]),
    dict(name="a GPU", q="What is a GPU?",
         defs=["A GPU, or graphics processing unit, is a processor with thousands of small cores that work in parallel.",
               "A GPU is a chip that was first made for graphics and is now widely used for machine learning."],
         facts=["It is very good at the matrix math that neural networks need.",
                "Large models are usually trained and served on GPUs.",
                "Small models can also run well on a normal CPU."]),
    dict(name="authentication", q="What is authentication?",
         defs=["Authentication is the process of checking who someone is.",
               "Authentication means proving your identity to a system."],
         facts=["A user can prove who they are with a password, a key, a token or a certificate.",
                "Authentication comes before authorization.",
                "A server should never write passwords or tokens in its logs.",
                "Strong authentication often uses more than one factor."]),
    dict(name="authorization", q="What is authorization?",
         defs=["Authorization is the process of deciding what someone is allowed to do.",
               "Authorization decides whether a request may go ahead."],
         facts=["First a system checks who you are, and then it checks what you may do.",
                "A request that is not authenticated gets 401 Unauthorized, and a request that is not allowed gets 403 Forbidden.",
                "Good systems give each user only the access they need.",
                "Every decision should be written to a log so that it can be checked later."]),
    dict(name="an API key", q="What is an API key?",
         defs=["An API key is a secret string that a client sends to prove that it may use an API.",
               "An API key is a long random secret that identifies a client of a service."],
         facts=["The client sends the key in a header, often as a bearer token.",
                "The server compares the key with the keys it knows and rejects the request if there is no match.",
                "A key should be long and random, so that nobody can guess it.",
                "Servers should store only a hash of each key, not the key itself.",
                "Keys should be rotated from time to time, and an old key should stop working soon after."]),
    dict(name="a bearer token", q="What is a bearer token?",
         defs=["A bearer token is a secret that gives access to whoever holds it.",
               "A bearer token is a credential that a client sends in the Authorization header of an HTTP request."],
         facts=["The header looks like this: Authorization: Bearer followed by the token.",
                "Because anyone who has the token can use it, it must be kept secret and sent only over TLS.",
                "A server that receives a request without a valid token answers with 401 Unauthorized.",
                "Tokens can be API keys or signed JSON Web Tokens."]),
    dict(name="a JSON Web Token", q="What is a JSON Web Token?", alt="What is a JWT?",
         defs=["A JSON Web Token, or JWT, is a signed token that carries a small set of claims in JSON.",
               "A JWT is a compact token with a header, a payload and a signature."],
         facts=["The claims say who the token is for, who issued it and when it expires.",
                "The server checks the signature with a key, so it knows that nobody changed the token.",
                "A JWT should have a short lifetime.",
                "Kubernetes service accounts use JWTs as their tokens."]),
    dict(name="token rotation", q="What is token rotation?", alt="How do you rotate a token?",
         defs=["Token rotation means replacing an old secret token with a new one.",
               "To rotate a token, you create a new token, give it to the clients and then remove the old one."],
         facts=["Rotation limits the damage if a token has leaked.",
                "In Kubernetes, you can patch the Secret that holds the token, and the server picks up the new value.",
                "With ward, the command ward keys rotate creates a new key and retires the old one.",
                "After the rotation, a request with the old token gets 401 Unauthorized."]),
    dict(name="TLS", q="What is TLS?",
         defs=["TLS, or Transport Layer Security, is a protocol that encrypts data sent over a network.",
               "TLS is the protocol that keeps web traffic private and safe from tampering."],
         facts=["HTTPS is HTTP sent over TLS.",
                "The server proves its identity with a certificate signed by a trusted authority.",
                "TLS protects passwords and tokens while they travel across the network.",
                "Old versions of TLS are weak, so servers should use TLS 1.2 or newer."]),
    dict(name="encryption", q="What is encryption?",
         defs=["Encryption is a way to turn readable data into secret data that only the holder of a key can read.",
               "Encryption protects data by scrambling it with a key."],
         facts=["Data is encrypted in transit with TLS and at rest on disk.",
                "Without the key, encrypted data looks like random bytes.",
                "Good encryption uses well tested algorithms and never home made ones."]),
    dict(name="a firewall", q="What is a firewall?",
         defs=["A firewall is a system that controls which network traffic may enter or leave a computer or a network.",
               "A firewall filters network traffic according to a set of rules."],
         facts=["It can block traffic by address, by port or by protocol.",
                "In Kubernetes, a NetworkPolicy works like a firewall for pods.",
                "A good rule is to allow only the traffic that is needed and block everything else."]),
    dict(name="Linux", q="What is Linux?",
         defs=["Linux is a free and open source operating system kernel.",
               "Linux is the kernel at the heart of many operating systems, such as Debian, Fedora and Red Hat Enterprise Linux."],
         facts=["It was first written by Linus Torvalds in 1991.",
                "Most servers on the internet run Linux.",
                "It also runs on phones, routers, cars and supercomputers.",
                "Containers use features of the Linux kernel to isolate programs from each other.",
                "Linux is developed in the open by thousands of people and companies."]),
    dict(name="the kernel", q="What is an operating system kernel?", alt="What is a kernel?",
         defs=["The kernel is the core of an operating system.",
               "A kernel is the program that manages the hardware and runs all other programs."],
         facts=["It decides which process runs on the CPU and for how long.",
                "It manages memory, files, devices and the network.",
                "Programs ask the kernel for services through system calls."]),
    dict(name="Debian", q="What is Debian?",
         defs=["Debian is a free operating system built on the Linux kernel.",
               "Debian is one of the oldest Linux distributions, made by a large community of volunteers."],
         facts=["It is known for being stable and carefully tested.",
                "Software is installed from packages with the apt command.",
                "Many other distributions, such as Ubuntu, are based on Debian."]),
    dict(name="open source", q="What is open source software?", alt="What is open source?",
         defs=["Open source software is software whose source code anyone can read, change and share.",
               "Open source means that the code of a program is public and comes with a license that allows reuse."],
         facts=["Many people and companies work together on open source projects.",
                "Linux, Kubernetes and Python are all open source.",
                "Because the code is public, anyone can check it for bugs and security problems."]),
    dict(name="Git", q="What is Git?",
         defs=["Git is a version control system that tracks changes to files.",
               "Git is a tool that records the history of a project, one commit at a time."],
         facts=["Each commit saves a snapshot of the files and a message that explains the change.",
                "Developers work on branches and merge them when the work is ready.",
                "Git was created by Linus Torvalds in 2005 to manage the Linux kernel."]),
    dict(name="Python", q="What is Python?",
         defs=["Python is a popular programming language that is easy to read and write.",
               "Python is a high level programming language used for scripts, web sites, data science and machine learning."],
         facts=["Its code uses indentation to show the structure of a program.",
                "It has a large standard library and many packages for almost every task.",
                "Most machine learning tools, such as PyTorch, are used from Python."]),
    dict(name="the C programming language", q="What is the C programming language?", alt="What is C?",
         defs=["C is a programming language from the early 1970s that is still widely used.",
               "C is a small and fast programming language that gives the programmer direct control of memory."],
         facts=["The Linux kernel and many system tools are written in C.",
                "C programs are compiled to machine code, so they run very fast.",
                "Because C does not check memory access for you, careful code and good tests are important."]),
    dict(name="HTTP", q="What is HTTP?",
         defs=["HTTP is the protocol that web browsers and servers use to talk to each other.",
               "HTTP, the Hypertext Transfer Protocol, is a simple request and response protocol."],
         facts=["A client sends a request with a method, such as GET or POST, a path and some headers.",
                "The server answers with a status code, headers and a body.",
                "The status 200 means OK, 401 means Unauthorized and 404 means Not Found.",
                "HTTPS is HTTP protected by TLS."]),
    dict(name="an API", q="What is an API?",
         defs=["An API, or application programming interface, is a defined way for programs to talk to each other.",
               "An API is a set of rules that says how to ask a program for something and what it will answer."],
         facts=["Web APIs usually send JSON over HTTP.",
                "A good API is documented, stable and secured.",
                "The OpenAI API has become a common way to talk to language models."]),
    dict(name="JSON", q="What is JSON?",
         defs=["JSON is a simple text format for data, made of objects, arrays, strings, numbers and the values true, false and null.",
               "JSON, or JavaScript Object Notation, is a light format for exchanging data."],
         facts=["It is easy for people to read and easy for programs to parse.",
                "Most web APIs send and receive JSON.",
                "A server should check every JSON request carefully and reject bad input with a clear error."]),
    dict(name="YAML", q="What is YAML?",
         defs=["YAML is a text format for configuration files that uses indentation to show structure.",
               "YAML is a human friendly data format often used for configuration."],
         facts=["Kubernetes objects are usually written in YAML files.",
                "Spaces matter in YAML, so a wrong indentation changes the meaning of a file."]),
    dict(name="the cloud", q="What is cloud computing?", alt="What is the cloud?",
         defs=["Cloud computing means renting computers, storage and services over the internet instead of owning them.",
               "The cloud is a large pool of computers in data centers that you can use over the internet."],
         facts=["You pay for what you use and can grow or shrink quickly.",
                "Public clouds are run by large providers, and private clouds are run by a company for itself.",
                "Kubernetes and OpenShift run the same way in many clouds."]),
    dict(name="a virtual machine", q="What is a virtual machine?",
         defs=["A virtual machine is a computer made in software that runs on a real computer.",
               "A virtual machine runs a whole operating system on top of a hypervisor."],
         facts=["Each virtual machine has its own kernel, so it is more isolated but heavier than a container.",
                "One physical server can run many virtual machines at the same time.",
                "Kubernetes nodes are often virtual machines in the cloud."]),
    dict(name="DNS", q="What is DNS?",
         defs=["DNS, the Domain Name System, turns names such as example.com into IP addresses.",
               "DNS is the phone book of the internet."],
         facts=["When you open a web site, your computer first asks DNS for the address of the server.",
                "Inside Kubernetes, every Service gets a DNS name."]),
    dict(name="a database", q="What is a database?",
         defs=["A database is an organized store of data that programs can search and update.",
               "A database is a system for keeping data safe and easy to find."],
         facts=["Many databases use tables with rows and columns and are queried with SQL.",
                "Databases keep data safe with backups and transactions."]),
    dict(name="monitoring", q="What is monitoring?",
         defs=["Monitoring means collecting numbers and logs from running systems to see if they work well.",
               "Monitoring is the practice of watching the health and performance of a system."],
         facts=["Metrics show things like the number of requests, errors and response times.",
                "Prometheus is a popular tool that collects metrics from services.",
                "Good monitoring warns the team before users notice a problem."]),
    dict(name="a log", q="What is a log?", alt="What are logs?",
         defs=["A log is a record of events written by a program while it runs.",
               "Logs are lines of text that tell what a program did and when."],
         facts=["Each line usually has a time, a level and a message.",
                "Structured logs are written as JSON, so tools can search them easily.",
                "Logs must never contain passwords, tokens or other secrets."]),
    # Everyday topics: they give the model ordinary English too.
    dict(name="bread", q="How do you make bread?", alt="What is bread?",
         defs=["Bread is a food made from flour, water, salt and yeast.",
               "To make bread, you mix flour, water, salt and yeast into a dough."],
         facts=["You knead the dough for about ten minutes until it is smooth.",
                "Then you let it rise in a warm place for an hour or two.",
                "After that, you shape the loaf and bake it in a hot oven.",
                "Fresh bread smells wonderful and tastes best on the day it is baked."]),
    dict(name="soup", q="How do you make vegetable soup?", alt="What is soup?",
         defs=["Vegetable soup is a warm dish made by cooking vegetables in water or stock.",
               "To make vegetable soup, you cook chopped vegetables in a pot of stock."],
         facts=["First you cut an onion, a carrot and a potato into small pieces.",
                "You cook the onion in a little oil until it is soft.",
                "Then you add the other vegetables and the stock and let it simmer for twenty minutes.",
                "At the end you add salt, pepper and fresh herbs."]),
    dict(name="tea", q="How do you make tea?", alt="What is tea?",
         defs=["Tea is a drink made by pouring hot water over the dried leaves of the tea plant.",
               "To make tea, you pour hot water over tea leaves and let them steep."],
         facts=["Black tea needs boiling water and about four minutes.",
                "Green tea is better with water that is a little cooler.",
                "Some people add milk, sugar or lemon."]),
    dict(name="coffee", q="What is coffee?",
         defs=["Coffee is a drink made from the roasted seeds of the coffee plant.",
               "Coffee is a popular hot drink that contains caffeine."],
         facts=["The seeds are called beans, and they are roasted and ground before use.",
                "Hot water pulls the flavor out of the ground beans.",
                "Many people drink a cup of coffee in the morning to feel awake."]),
    dict(name="sleep", q="Why is sleep important?", alt="What is sleep?",
         defs=["Sleep is a time of rest when the body and the brain recover.",
               "Sleep is important because the body repairs itself and the brain stores memories while we rest."],
         facts=["Most adults need seven to nine hours of sleep each night.",
                "Good sleep helps us think clearly and stay healthy.",
                "A dark, quiet and cool room makes it easier to fall asleep."]),
    dict(name="the sun", q="What is the sun?",
         defs=["The sun is the star at the center of our solar system.",
               "The sun is a huge ball of hot gas that gives the Earth light and heat."],
         facts=["It is about 150 million kilometers away from the Earth.",
                "Light from the sun takes about eight minutes to reach us.",
                "Plants use sunlight to make their food."]),
    dict(name="the ocean", q="What is the ocean?",
         defs=["The ocean is the large body of salt water that covers most of the Earth.",
               "The ocean covers about seventy percent of the surface of the Earth."],
         facts=["It is home to fish, whales, coral and countless small creatures.",
                "The ocean helps control the climate by storing heat.",
                "Its deepest point is about eleven kilometers below the surface."]),
    dict(name="a tree", q="What is a tree?",
         defs=["A tree is a tall plant with a wooden trunk, branches and leaves.",
               "A tree is a large plant that can live for many years."],
         facts=["Trees take in carbon dioxide and give out oxygen.",
                "Their roots hold the soil in place and take up water.",
                "Some trees live for more than a thousand years."]),
]

# Facts about pairs, for "What is the difference between X and Y?"
DIFFS = [
    ("a container", "a virtual machine",
     "A container shares the kernel of its host, while a virtual machine runs its own kernel. "
     "Containers are lighter and start faster, and virtual machines give stronger isolation."),
    ("authentication", "authorization",
     "Authentication checks who you are, and authorization checks what you are allowed to do. "
     "A failed authentication gives 401 Unauthorized, and a failed authorization gives 403 Forbidden."),
    ("Kubernetes", "OpenShift",
     "Kubernetes is the open source core, and OpenShift is a product from Red Hat built on it. "
     "OpenShift adds a web console, developer tools and stronger security defaults."),
    ("a pod", "a container",
     "A container runs one program, and a pod is a group of one or more containers that Kubernetes runs together. "
     "The containers in a pod share the same network address."),
    ("HTTP", "HTTPS",
     "HTTP sends data as plain text, while HTTPS sends it through an encrypted TLS connection. "
     "Tokens and passwords should only be sent over HTTPS."),
    ("an API key", "a JSON Web Token",
     "An API key is a random secret that the server looks up, while a JWT is a signed token that carries its own claims. "
     "A JWT usually expires after a short time, and an API key lasts until it is rotated."),
    ("a Deployment", "a pod",
     "A pod runs containers, and a Deployment creates and replaces pods to keep the right number running."),
]

QUESTION_FORMS = ["Tell me about {n}.", "Can you explain {n}?", "Explain {n} in simple words.",
                  "I want to learn about {n}.", "Please describe {n}."]
SYSTEMS = ["You are a helpful assistant.", "You are a helpful assistant. Answer in simple English.",
           "You are ward, a friendly assistant.", ""]

# Short stories: TinyStories-style, with slots.
NAMES = [("Anna", "she", "her"), ("Ben", "he", "his"), ("Maya", "she", "her"), ("Tom", "he", "his"),
         ("Lena", "she", "her"), ("Sam", "he", "his"), ("Nora", "she", "her"), ("Omar", "he", "his"),
         ("Lily", "she", "her"), ("Leo", "he", "his")]
ROLES = ["an engineer", "a developer", "a student", "a system administrator", "a data scientist"]
STORIES = [
    "{N} was {role} at a small company. One morning, {p} saw that the web site was down. {P} opened the logs and found the problem: a pod had run out of memory. {P} gave the pod more memory and restarted the Deployment. A few minutes later, the site was working again, and {N} was happy.",
    "{N} wanted to learn about Kubernetes. {P} started a small cluster on {h} laptop and ran {h} first container. It printed hello world. Then {p} made a Deployment with three replicas and watched Kubernetes start the pods. {N} smiled. It was easier than {p} had thought.",
    "{N} built a model server for {h} team. At first, anyone on the network could send it requests. {N} knew that this was not safe. {P} added an API key, and now every request without the key got 401 Unauthorized. {H} team was glad that the model was protected.",
    "One day, {N} found an old API key in a public file. {P} knew that the key had leaked. {P} rotated the key right away, so the old key stopped working. Then {p} removed the file and told {h} team what had happened. Nobody had used the key, and everyone was relieved.",
    "{N} liked to bake bread on Sundays. {P} mixed flour, water, salt and yeast in a big bowl. {P} kneaded the dough and let it rise. When the bread came out of the oven, the whole kitchen smelled good. {N} shared the warm bread with {h} friends.",
    "It was a rainy day, and {N} stayed at home. {P} made a cup of tea and sat by the window. {P} read a book about the ocean and learned that whales sing to each other. {N} thought it was the most beautiful thing {p} had read all year.",
    "{N} was {role}. {H} first task was to write a small program in Python. The program read a JSON file and printed the names in it. When it worked, {N} saved it with Git and wrote a clear commit message. {P} felt proud of {h} first commit.",
    "{N} asked a small language model a question: What is Kubernetes? The model answered that Kubernetes is an open source system that runs containers on many computers. {N} was surprised that such a small model gave a good answer.",
    "Every evening, {N} checked the dashboard of {h} cluster. The graphs showed the number of requests and the response times. One evening, the error rate went up. {N} looked at the logs, found a bad configuration and fixed it. The graphs went back to normal.",
    "{N} and {h} friend went to the park on a sunny day. The sun was warm, and the trees were green. They sat under a big tree and talked about their plans. Later they went home, tired and happy.",
]


def expand(text, rng):
    """Expands {a|b} alternatives (one level)."""
    return re.sub(r"\{([^{}]*\|[^{}]*)\}", lambda m: rng.choice(m.group(1).split("|")), text)


def pick_ordered(items, k, rng):
    """k items from the list, keeping their order (coherent paragraphs)."""
    idx = sorted(rng.sample(range(len(items)), min(k, len(items))))
    return [items[i] for i in idx]


def answer(t, rng, lo=2, hi=5):
    parts = [rng.choice(t["defs"])] + pick_ordered(t["facts"], rng.randint(lo, hi), rng)
    return " ".join(expand(p, rng) for p in parts)


def question(t, rng):
    r = rng.random()
    if r < 0.70:
        return t["q"]
    if r < 0.80 and "alt" in t:
        return t["alt"]
    return rng.choice(QUESTION_FORMS).format(n=t["name"])


def diff_doc(rng):
    a, b, text = rng.choice(DIFFS)
    if rng.random() < 0.5:
        return "What is the difference between %s and %s?" % (a, b), text
    return "How is %s different from %s?" % (a, b), text


def story(rng):
    n, p, h = rng.choice(NAMES)
    s = rng.choice(STORIES)
    return s.format(N=n, p=p, P=p.capitalize(), h=h, H=h.capitalize(), role=rng.choice(ROLES))


def chatml(system, turns):
    """Renders turns as ChatML; the tokenizer maps the markers to control tokens."""
    out = ""
    if system:
        out += "<|im_start|>system\n%s<|im_end|>\n" % system
    for i, (role, text) in enumerate(turns):
        out += "<|im_start|>%s\n%s<|im_end|>" % (role, text)
        if i + 1 < len(turns):
            out += "\n"
    return out


def document(rng):
    """One training document (plain text; ChatML markers stay as text)."""
    r = rng.random()
    if r < 0.42:  # completion: question then answer
        t = rng.choice(TOPICS)
        return question(t, rng) + " " + answer(t, rng)
    if r < 0.47:
        q, a = diff_doc(rng)
        return q + " " + a
    if r < 0.67:  # chat
        turns = []
        for _ in range(1 if rng.random() < 0.8 else 2):
            if rng.random() < 0.1:
                q, a = diff_doc(rng)
            else:
                t = rng.choice(TOPICS)
                q, a = question(t, rng), answer(t, rng, 1, 4)
            turns += [("user", q), ("assistant", a)]
        return chatml(rng.choice(SYSTEMS), turns)
    if r < 0.85:  # prose paragraph
        t = rng.choice(TOPICS)
        return answer(t, rng, 3, 6)
    return story(rng)


def generate(seed, n_docs):
    rng = random.Random(seed)
    return [document(rng) for _ in range(n_docs)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--docs", type=int, default=20)
    a = ap.parse_args()
    for d in generate(a.seed, a.docs):
        print(json.dumps(d))


if __name__ == "__main__":
    main()
