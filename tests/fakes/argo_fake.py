#!/usr/bin/env python3
"""A fake Argo Workflows server (argo-server's REST API) for libaiplat's
tests. Standard library only; see pipeline_fake_base.py for the control API
and docs/decisions/0012-pipeline-engines.md for the shapes and their sources.

What it serves, as argo-server v3.4-v4 does through grpc-gateway v1 with
argo's encoding/json marshaler and DefaultHTTPProtoErrorHandler:

  POST /api/v1/workflows/{namespace}/submit          -> Workflow
  GET  /api/v1/workflows/{namespace}/{name}[?fields=] -> Workflow
  GET  /api/v1/workflow-templates/{namespace}/{name}  -> WorkflowTemplate
  GET  /api/v1/workflow-templates/{namespace}         -> WorkflowTemplateList

Errors are google.rpc.Status marshaled by encoding/json, so empty details
are omitted: {"code":5,"message":"..."} with grpc-gateway's HTTP status.
Other /api/ paths answer 501 {"code":12,"message":"Not Implemented"}
(grpc-gateway v1's ErrUnknownURI); paths outside /api/ answer 404.

Templates: --template [NAMESPACE/]NAME[:OUTCOME], OUTCOME one of
Succeeded (default), Failed, Error. A submitted parameter named "outcome"
(--outcome-param) with one of those values overrides the template's.
A submitted workflow has no phase; each GET (or each --step-ms) moves it on:
Pending, Running (--running-steps times), then its outcome.
"""

import random
import sys
import time
import uuid

import pipeline_fake_base as base

TEMPLATE_LABEL = "workflows.argoproj.io/workflow-template"
PHASE_LABEL = "workflows.argoproj.io/phase"
COMPLETED_LABEL = "workflows.argoproj.io/completed"
OUTCOMES = ("Succeeded", "Failed", "Error")
TEMPLATE_KINDS = ("WorkflowTemplate", "workflowtemplate", "workflowtemplates",
                  "wftmpl")
CLUSTER_KINDS = ("ClusterWorkflowTemplate", "clusterworkflowtemplate",
                 "clusterworkflowtemplates", "cwftmpl")
CRON_KINDS = ("CronWorkflow", "cronworkflow", "cronworkflows", "cwf")
FAQ = "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/"


class Argo:
    name = "argo_fake"

    def __init__(self, args):
        self.args = args
        self.templates = {}  # (ns, name) -> template dict
        self.workflows = {}  # (ns, name) -> {"obj":..., "progress":...}
        self.rv = 1000
        self.rng = random.Random()
        for spec in args.template or []:
            self.add_template(spec)

    # ---- configuration ---------------------------------------------------

    def add_template(self, spec):
        name, _, outcome = spec.partition(":")
        ns, _, tname = name.rpartition("/")
        ns = ns or self.args.namespace
        outcome = outcome or "Succeeded"
        if outcome not in OUTCOMES:
            raise SystemExit("argo_fake: outcome %r is not one of %s"
                             % (outcome, ", ".join(OUTCOMES)))
        self.rv += 1
        self.templates[(ns, tname)] = {
            "outcome": outcome,
            "obj": {
                "metadata": {
                    "name": tname,
                    "namespace": ns,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": str(self.rv),
                    "generation": 1,
                    "creationTimestamp": base.rfc3339(time.time()),
                },
                "spec": {
                    "templates": [{
                        "name": "main",
                        "inputs": {},
                        "outputs": {},
                        "metadata": {},
                        "container": {"name": "", "image": "busybox",
                                      "command": ["true"], "resources": {}},
                    }],
                    "entrypoint": "main",
                    "arguments": {},
                },
            },
        }

    # ---- wire format -----------------------------------------------------

    def error_body(self, code, message, detail=None):
        # encoding/json of google.rpc.Status: omitempty drops empty fields
        body = {}
        if code:
            body["code"] = code
        if message:
            body["message"] = message
        return body

    def fault_message(self, code):
        return {13: "rpc error: injected internal error",
                14: "connection error: desc = \"transport: injected\"",
                4: "context deadline exceeded",
                8: "too many requests"}.get(code, "injected error")

    def fault_detail(self, code):
        return None

    def snapshot(self):
        return {"workflows": [w["obj"] for w in self.workflows.values()],
                "templates": [t["obj"] for t in self.templates.values()]}

    # ---- routing ---------------------------------------------------------

    def handle(self, h, method, seg, query, body):
        if not seg or seg[0] != "api":
            h.reply(404, "404 page not found\n", "text/plain; charset=utf-8")
            return
        route = None
        if len(seg) == 5 and seg[:2] == ["api", "v1"]:
            if method == "POST" and seg[2] == "workflows" and seg[4] == "submit":
                route = self.submit
            elif method == "GET" and seg[2] == "workflows":
                route = self.get_workflow
            elif method == "GET" and seg[2] == "workflow-templates":
                route = self.get_template
        elif len(seg) == 4 and seg[:3] == ["api", "v1", "workflow-templates"] \
                and method == "GET":
            route = self.list_templates
        if route is None:
            h.reply_error(12, "Not Implemented", grpc_metadata=False)
            return
        # The body is decoded by the gateway before the gRPC call that
        # checks the token.
        req = None
        if method == "POST":
            try:
                req = base.json.loads(body.decode("utf-8") or "{}")
                if not isinstance(req, dict):
                    raise ValueError
            except ValueError:
                h.reply_error(3, base.go_decode_error(body), grpc_metadata=False)
                return
        auth = self.check_auth(h)
        if auth:
            h.reply_error(16, auth)
            return
        with h.server.lock:
            route(h, seg, query, req)

    def check_auth(self, h):
        token = self.args.token
        if not token:
            return None  # auth mode "server"
        value = h.headers.get("Authorization", "")
        if not (value.startswith("Bearer ") or value.startswith("Basic ")):
            return FAQ
        if value != "Bearer " + token:
            # client mode: the Kubernetes API refuses the token
            return "Unauthorized"
        return None

    # ---- endpoints -------------------------------------------------------

    def submit(self, h, seg, query, req):
        ns = seg[3]  # the path parameter overrides the body's namespace
        kind = req.get("resourceKind", "") or ""
        rname = req.get("resourceName", "") or ""
        opts = req.get("submitOptions") or {}
        if kind in CRON_KINDS:
            h.reply_error(5, 'cronworkflows.argoproj.io "%s" not found' % rname)
            return
        if kind in CLUSTER_KINDS:
            h.reply_error(
                5, 'clusterworkflowtemplates.argoproj.io "%s" not found' % rname)
            return
        if kind not in TEMPLATE_KINDS:
            h.reply_error(
                3, "Resource kind '%s' is not supported for submitting" % kind)
            return
        labels = {TEMPLATE_LABEL: rname}
        if opts.get("labels"):
            parsed = parse_labels(opts["labels"])
            if parsed is None:
                h.reply_error(13, "expected labels of the form: "
                              "NAME1=VALUE2,NAME2=VALUE2. Received: %s"
                              % opts["labels"])
                return
            labels.update(parsed)
        params = []
        for p in opts.get("parameters") or []:
            if not isinstance(p, str) or "=" not in p:
                h.reply_error(13, "expected parameter of the form: NAME=VALUE. "
                              "Received: %s" % p)
                return
            k, v = p.split("=", 1)
            params = [x for x in params if x["name"] != k]
            params.append({"name": k, "value": v})
        tmpl = self.templates.get((ns, rname))
        if tmpl is None:
            h.reply_error(5, '%s "%s" not found' % (self.template_resource(),
                                                    rname))
            return
        generate = opts.get("generateName") or rname + "-"
        name = opts.get("name") or ""
        meta = {"generateName": generate, "namespace": ns,
                "labels": labels}
        spec = {"arguments": {"parameters": params} if params else {},
                "workflowTemplateRef": {"name": rname}}
        if opts.get("entryPoint"):
            spec["entrypoint"] = opts["entryPoint"]
        if opts.get("serviceAccount"):
            spec["serviceAccountName"] = opts["serviceAccount"]
        if opts.get("dryRun"):
            if name:
                meta["name"] = name
            h.reply_json(200, {"metadata": meta, "spec": spec,
                               "status": {"startedAt": None,
                                          "finishedAt": None}})
            return
        if not name:
            name = generate + "".join(self.rng.choice(base.NAME_ALPHABET)
                                      for _ in range(5))
        if (ns, name) in self.workflows:
            h.reply_error(6, 'workflows.argoproj.io "%s" already exists' % name)
            return
        self.rv += 1
        meta = dict(meta)
        meta.update({"name": name, "uid": str(uuid.uuid4()),
                     "resourceVersion": str(self.rv), "generation": 1,
                     "creationTimestamp": base.rfc3339(time.time())})
        obj = {"metadata": meta, "spec": spec,
               "status": {"startedAt": None, "finishedAt": None}}
        outcome = tmpl["outcome"]
        for p in params:
            if p["name"] == self.args.outcome_param and p["value"] in OUTCOMES:
                outcome = p["value"]
        # "" first: a submitted workflow has no phase until the controller
        # sees it.
        steps = ["", "Pending"] + ["Running"] * max(1, self.args.running_steps) \
            + [outcome]
        self.workflows[(ns, name)] = {
            "obj": obj,
            "progress": base.Progress(steps, self.args.advance,
                                      self.args.step_ms),
            "phase": "",
        }
        h.reply_json(200, obj)

    def template_resource(self):
        # argo-server <= v3.6 reads templates with the Kubernetes client
        # (plural resource in the message); v3.7+/v4 with an informer's
        # lister (singular).
        return "workflowtemplate.argoproj.io" if self.args.informer \
            else "workflowtemplates.argoproj.io"

    def get_workflow(self, h, seg, query, req):
        ns, name = seg[3], seg[4]
        wf = self.workflows.get((ns, name))
        if wf is None:
            h.reply_error(5, 'workflows.argoproj.io "%s" not found' % name)
            return
        phase = wf["progress"].on_poll()
        if phase != wf["phase"]:
            self.set_phase(wf, phase)
        obj = wf["obj"]
        fields = query.get("fields", [""])[0]
        if fields:
            obj = clean_fields(obj, fields)
        h.reply_json(200, obj)

    def set_phase(self, wf, phase):
        obj = wf["obj"]
        now = base.rfc3339(time.time())
        st = obj["status"]
        name = obj["metadata"]["name"]
        wf["phase"] = phase
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        obj["metadata"]["labels"][PHASE_LABEL] = phase
        done = phase in OUTCOMES
        obj["metadata"]["labels"][COMPLETED_LABEL] = "true" if done else "false"
        st["phase"] = phase
        if phase != "Pending" and st.get("startedAt") is None:
            st["startedAt"] = now
        if done:
            st["finishedAt"] = now
            st["progress"] = "1/1" if phase == "Succeeded" else "0/1"
            if phase == "Failed":
                st["message"] = self.args.failed_message or \
                    "child '%s-%d' failed" % (name, self.rng.randrange(10**9,
                                                                      10**10))
            elif phase == "Error":
                st["message"] = self.args.error_message
        else:
            st["progress"] = "0/1"
        node = {"id": name, "name": name, "displayName": name,
                "type": "Pod", "templateName": "main",
                "templateScope": "local/", "phase": phase,
                "startedAt": st.get("startedAt"),
                "finishedAt": st.get("finishedAt"),
                "progress": st["progress"]}
        if st.get("message"):
            node["message"] = st["message"]
        st["nodes"] = {name: node}

    def get_template(self, h, seg, query, req):
        t = self.templates.get((seg[3], seg[4]))
        if t is None:
            h.reply_error(5, '%s "%s" not found' % (self.template_resource(),
                                                    seg[4]))
            return
        h.reply_json(200, t["obj"])

    def list_templates(self, h, seg, query, req):
        items = [t["obj"] for (ns, _), t in sorted(self.templates.items())
                 if ns == seg[3]]
        h.reply_json(200, {"metadata": {"resourceVersion": str(self.rv)},
                           "items": items or None})


def parse_labels(text):
    out = {}
    for item in text.split(","):
        k, sep, v = item.partition("=")
        if not sep or not k:
            return None
        out[k.strip()] = v.strip()
    return out


def clean_fields(obj, fields):
    """argo's fields.Cleaner: "a.b,c" keeps those paths; "-a.b" drops them."""
    exclude = fields.startswith("-")
    paths = [p.split(".") for p in fields.lstrip("-").split(",") if p]
    if exclude:
        out = base.json.loads(base.json.dumps(obj))
        for p in paths:
            node = out
            for k in p[:-1]:
                node = node.get(k) if isinstance(node, dict) else None
                if node is None:
                    break
            if isinstance(node, dict):
                node.pop(p[-1], None)
        return out
    out = {}
    for p in paths:
        src, dst = obj, out
        for i, k in enumerate(p):
            if not isinstance(src, dict) or k not in src:
                break
            if i == len(p) - 1:
                dst[k] = src[k]
            else:
                src = src[k]
                dst = dst.setdefault(k, {})
    return out


def main(argv):
    p = base.common_args("fake Argo Workflows server for tests")
    p.add_argument("--namespace", default="ai-ml",
                   help="namespace of templates given without one")
    p.add_argument("--template", action="append",
                   help="[NAMESPACE/]NAME[:Succeeded|Failed|Error]")
    p.add_argument("--outcome-param", default="outcome",
                   help="parameter that selects a run's final phase")
    p.add_argument("--informer", action="store_true",
                   help="not-found messages as argo-server v3.7+ words them")
    p.add_argument("--failed-message", default=None)
    p.add_argument("--error-message",
                   default="error in entry template execution: "
                           "pods \"main\" is forbidden: exceeded quota")
    args = p.parse_args(argv)
    base.serve(Argo(args), args)


if __name__ == "__main__":
    main(sys.argv[1:])
