"""Refuse a load-balancer configuration that spreads one student's requests over several replicas.

A Streamlit session lives in one server process: its websocket, its uploaded files, its widget
state. A balancer that sends the upload ``PUT /_stcore/upload_file/<session>/<file>`` to another
replica gets "Invalid session_id" back, so the student sees an upload error long after the
deployment "worked". This check makes that mistake fail up front instead::

    python deploy/check_config.py deploy/haproxy.cfg.tmpl deploy/compose.yaml deploy/k8s/*.yaml

Exit status 0 when every file is accepted, 1 when one is refused (each refusal names the
backend or object, what is missing and what is accepted), 2 on a usage or parse error.
``deploy/cluster.py`` runs :func:`check_haproxy` on the config it generated before it starts
HAProxy.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ACCEPTED_HAPROXY = ("'cookie <NAME> insert ...' with a 'cookie <value>' on every server "
                    "(or 'cookie ... dynamic' with 'dynamic-cookie-key'), 'balance source', "
                    "or a 'stick-table' with 'stick on ...'")
ACCEPTED_K8S = ("the Ingress annotation 'nginx.ingress.kubernetes.io/affinity: cookie' "
                "or 'sessionAffinity: ClientIP' on the Service")
SECRET_VAR = "STREAMLIT_SERVER_COOKIE_SECRET"


class ConfigError(ValueError):
    """A configuration that would break multi-replica sessions; the message says why."""


def _sections(text: str) -> list[tuple[str, str, list[list[str]]]]:
    """Split an HAProxy config into (kind, name, [words of each line]) sections, comments removed."""
    sections: list[tuple[str, str, list[list[str]]]] = []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()  # '#' starts a comment only after a blank
        if not line:
            continue
        words = line.split()
        if words[0] in ("global", "defaults", "frontend", "backend", "listen", "resolvers",
                        "peers", "userlist", "cache", "program", "http-errors", "ring", "mailers"):
            sections.append((words[0], words[1] if len(words) > 1 else "", []))
        elif sections:
            sections[-1][2].append(words)
    return sections


def _server_count(lines: list[list[str]]) -> int:
    """How many app servers a backend can route to; a server-template counts as its slot range."""
    n = 0
    for w in lines:
        if w[0] == "server":
            n += 1
        elif w[0] == "server-template" and len(w) > 2:
            lo, _, hi = w[2].partition("-")  # "server-template r 1-8 ..." or "... r 8 ..."
            n += (int(hi) - int(lo) + 1) if hi else int(lo)
    return n


def _affinity_problem(name: str, lines: list[list[str]], defaults: list[list[str]]) -> str | None:
    """Why backend ``name`` is not session-sticky, or None when it is."""
    own = {w[0] for w in lines}
    cookie = next((w for w in lines if w[0] == "cookie"), None) or (
        None if "cookie" in own else next((w for w in defaults if w[0] == "cookie"), None))
    balance = next((w for w in lines if w[0] == "balance"), None) or next(
        (w for w in defaults if w[0] == "balance"), None)
    if balance and len(balance) > 1 and balance[1] == "source":
        return None
    if "stick-table" in own and any(w[0] == "stick" and len(w) > 1 and w[1] in ("on", "match") for w in lines):
        return None
    if cookie and any(mode in cookie for mode in ("insert", "rewrite", "prefix")):
        if "dynamic" in cookie:
            has_key = any(w[0] == "dynamic-cookie-key" for w in lines + defaults)
            return None if has_key else (f"backend '{name}': 'cookie ... dynamic' needs a 'dynamic-cookie-key' "
                                         f"line to derive each server's cookie value")
        servers = [w for w in lines if w[0] in ("server", "server-template")]
        bare = [w[1] for w in servers if "cookie" not in w[2:]]
        if bare:
            return (f"backend '{name}': 'cookie {cookie[1]} ...' is set but server(s) {', '.join(bare)} have no "
                    f"'cookie <value>', so HAProxy cannot pin a student to them; add 'cookie r1', 'cookie r2', ...")
        return None
    return (f"backend '{name}' balances {_server_count(lines)} app servers with no session affinity. "
            f"Streamlit keeps a session (its websocket and uploads) in one process, so uploads would "
            f"fail with 'Invalid session_id'. Accepted: {ACCEPTED_HAPROXY}.")


def check_haproxy(text: str) -> list[str]:
    """Return the refusals for an HAProxy config (empty when accepted).

    Args:
        text: The configuration text (a rendered ``haproxy.cfg`` or the template).

    Returns:
        One message per backend (or listen section) that routes to more than one server
        without session affinity.
    """
    problems, defaults = [], []
    for kind, name, lines in _sections(text):
        if kind == "defaults":
            defaults = lines
        elif kind in ("backend", "listen") and _server_count(lines) > 1:
            problem = _affinity_problem(name, lines, defaults)
            if problem:
                problems.append(problem)
    return problems


def _yaml_docs(path: Path) -> list[dict]:
    import yaml  # PyYAML comes with timm and huggingface_hub, both in requirements.txt

    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def check_compose(path: Path) -> list[str]:
    """Refusals for a compose file: its app services must share one required cookie secret,
    and every HAProxy config it mounts must pass :func:`check_haproxy`."""
    (doc,) = _yaml_docs(path)[:1] or [{}]
    problems = []
    for name, svc in (doc.get("services") or {}).items():
        image = str(svc.get("image", "")) + str(svc.get("build", ""))
        env = svc.get("environment") or {}
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env) if isinstance(env, list) else env
        if "haproxy" in image:
            for vol in svc.get("volumes") or []:
                src = (vol.get("source") if isinstance(vol, dict) else str(vol).split(":")[0]) or ""
                cfg = (path.parent / src).resolve()
                if src.endswith((".cfg", ".tmpl")) and cfg.is_file():
                    problems += [f"{path.name}: service '{name}' mounts {src}: {p}" for p in check_haproxy(cfg.read_text())]
        elif "streamlit" in str(svc.get("command", "")) or SECRET_VAR in env:
            value = str(env.get(SECRET_VAR, ""))
            if not re.fullmatch(r"\$\{" + SECRET_VAR + r":\?[^}]*\}", value):
                problems.append(f"{path.name}: service '{name}' must take {SECRET_VAR}: "
                                f"'${{{SECRET_VAR}:?...}}' (one secret shared by every replica, required), got {value!r}")
    return problems


def check_k8s(path: Path) -> list[str]:
    """Refusals for Kubernetes manifests: a Deployment with more than one replica needs cookie
    affinity on its Ingress (or ClientIP affinity on its Service) and the cookie secret from a Secret."""
    docs = _yaml_docs(path)
    problems = []
    for dep in (d for d in docs if d.get("kind") == "Deployment"):
        name, spec = dep["metadata"]["name"], dep.get("spec") or {}
        if int(spec.get("replicas", 1)) <= 1:
            continue
        env = [e for c in spec["template"]["spec"]["containers"] for e in c.get("env") or []]
        if not any(e.get("name") == SECRET_VAR and "secretKeyRef" in (e.get("valueFrom") or {}) for e in env):
            problems.append(f"{path.name}: Deployment '{name}' needs env {SECRET_VAR} from a secretKeyRef "
                            f"so that every replica shares one cookie secret")
        sticky_svc = any(d.get("kind") == "Service" and (d.get("spec") or {}).get("sessionAffinity") == "ClientIP"
                         for d in docs)
        ingresses = [d for d in docs if d.get("kind") == "Ingress"]
        for svc in (d for d in docs if d.get("kind") == "Service"):
            sspec = svc.get("spec") or {}
            if sspec.get("type") in ("LoadBalancer", "NodePort") and sspec.get("sessionAffinity") != "ClientIP":
                problems.append(f"{path.name}: Service '{svc['metadata']['name']}' ({sspec['type']}) spreads "
                                f"Deployment '{name}' ({spec['replicas']} replicas) with no session affinity. "
                                f"Accepted: {ACCEPTED_K8S}.")
        for ing in ingresses:
            notes = (ing.get("metadata") or {}).get("annotations") or {}
            if notes.get("nginx.ingress.kubernetes.io/affinity") != "cookie" and not sticky_svc:
                problems.append(f"{path.name}: Ingress '{ing['metadata']['name']}' routes to Deployment '{name}' "
                                f"({spec['replicas']} replicas) with no session affinity. Accepted: {ACCEPTED_K8S}.")
    return problems


def check_file(path: str | Path) -> list[str]:
    """Dispatch on the file's kind: HAProxy config (.cfg/.tmpl), compose file or Kubernetes manifest."""
    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        docs = _yaml_docs(p)
        return check_k8s(p) if any("kind" in d for d in docs) else check_compose(p)
    if p.suffix == ".tmpl":  # check what deploy/cluster.py renders from it, for two replicas
        from cluster import render_config

        return [f"{p.name} (rendered for 2 replicas): {m}"
                for m in check_haproxy(render_config([8501, 8502], 8600, 8601, template=p))]
    return [f"{p.name}: {m}" for m in check_haproxy(p.read_text())]


def main(argv: list[str] | None = None) -> int:
    """Check each file named on the command line; print refusals to stderr."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths or paths[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    refused = 0
    for path in paths:
        try:
            problems = check_file(path)
        except Exception as e:  # noqa: BLE001 (YAML, template and I/O errors alike: name the file)
            print(f"check_config: cannot read {path}: {e}", file=sys.stderr)
            return 2
        for problem in problems:
            print(f"REFUSED {problem}", file=sys.stderr)
        refused += bool(problems)
        if not problems:
            print(f"ok  {path}")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
