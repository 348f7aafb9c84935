"""The Kubernetes deployment (deploy/k8s) and compose, checked statically but against their
real schemas: the base and its overlay render (`kubectl kustomize` where it is on PATH, else
this file's own loader), every core object validates against its Kubernetes schema
(kubernetes-validate), the KubeRay objects have the fields the docs rely on, every limit has
its request, the images agree, and every env and Secret key is a setting that exists. Each
check is shown failing on a planted mistake."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cifar_sweeps.settings import Settings
from tests.helpers.paths import REPO

ROOT = REPO
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.32"
# Variables the manifests may set that are no CIFAR_SWEEPS_* setting of their own.
OTHER_ENV = {"RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "CIFAR_SWEEPS_SECRETS_DIR"}
OTHER_SECRETS = {"postgres_password", "ray_auth_token"}  # read by PostgreSQL and Ray, not by Settings


# ---------------------------------------------------------------- rendering


def render(folder: Path) -> tuple[list[dict], str]:
    """The objects a kustomization renders to, and how it was rendered."""
    if shutil.which("kubectl"):
        p = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return [d for d in yaml.safe_load_all(p.stdout) if d], "kubectl kustomize"
    return own_render(folder), "this test's loader"


def own_render(folder: Path) -> list[dict]:
    """The subset of Kustomize the deployment uses: resources (files or a base folder),
    common labels, image names, and JSON 6902 patches (replace, remove, add)."""
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objs: list[dict] = []
    for res in k.get("resources", []):
        path = folder / res
        objs += own_render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for group in k.get("labels", []):
        for o in objs:
            o.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
    for img in k.get("images", []):
        new = f"{img.get('newName', img['name'])}:{img['newTag']}" if "newTag" in img else img.get("newName")
        for c in containers(objs):
            if c["image"].split(":")[0] == img["name"]:
                c["image"] = new
    for patch in k.get("patches", []):
        target = patch["target"]
        for o in objs:
            if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]:
                for op in yaml.safe_load(patch["patch"]):
                    _apply(o, op)
    return objs


def _apply(obj: dict, op: dict) -> None:
    *parents, last = [p for p in op["path"].split("/") if p]
    node = obj
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    key = int(last) if isinstance(node, list) else last
    if op["op"] == "remove":
        del node[key]
    else:
        node[key] = op["value"]


def containers(objs: list[dict]) -> list[dict]:
    """Every container of every object, at any depth (pods, templates, RayCluster groups)."""
    out = []

    def walk(v):
        if isinstance(v, dict):
            for k, sub in v.items():
                if k in ("containers", "initContainers") and isinstance(sub, list):
                    out.extend(c for c in sub if isinstance(c, dict) and "image" in c)
                walk(sub)
        elif isinstance(v, list):
            for sub in v:
                walk(sub)

    walk(objs)
    return out


def secret_example() -> dict:
    return yaml.safe_load((K8S / "secret.example.yaml").read_text())


# ---------------------------------------------------------------- the checks


def schema_problems(objs: list[dict]) -> list[str]:
    import kubernetes_validate

    out = []
    for o in objs:
        if "." in o["apiVersion"].split("/")[0] and not o["apiVersion"].startswith("apps/"):
            continue  # a custom resource (ray.io): checked by kuberay_problems
        try:
            kubernetes_validate.validate(o, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            out.append(f"{o['kind']}/{o['metadata']['name']}: {e.message}")
    return out


def resource_problems(objs: list[dict]) -> list[str]:
    out = []
    for c in containers(objs):
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if not limits:
            out.append(f"container {c['name']}: no limits")
        out += [f"container {c['name']}: a limit of {k} without a request" for k in limits if k not in requests]
    return out


def image_problems(objs: list[dict], folder: Path) -> list[str]:
    """The project's containers all run one image, the one the kustomization names."""
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    named = [f"{i['newName']}:{i['newTag']}" for i in k.get("images", []) if "newTag" in i]
    ours = {c["image"] for c in containers(objs) if not c["image"].startswith("postgres:")}
    out = [] if len(ours) == 1 else [f"the containers run different images: {sorted(ours)}"]
    if named and ours != {named[-1]}:
        out.append(f"the containers run {sorted(ours)}, not the kustomization's {named[-1]}")
    return out


def kuberay_problems(objs: list[dict]) -> list[str]:
    from cifar_sweeps.sweepspec import presets

    out = []
    (cluster,) = [o for o in objs if o["kind"] == "RayCluster"]
    (job,) = [o for o in objs if o["kind"] == "RayJob"]
    spec = cluster["spec"]
    if spec.get("enableInTreeAutoscaling") is not True:
        out.append("RayCluster: enableInTreeAutoscaling is not true (the docs say the worker groups autoscale)")
    if spec["headGroupSpec"]["rayStartParams"].get("num-cpus") != "0":
        out.append('RayCluster: the head is not num-cpus "0" (trials would run on it)')
    groups = spec["workerGroupSpecs"]
    gpu = [g for g in groups if "nvidia.com/gpu" in str(g["template"]["spec"]["containers"][0]["resources"])]
    if gpu and any(g.get("minReplicas", 1) != 0 for g in gpu):
        out.append("RayCluster: a GPU worker group does not scale from 0")
    submitter = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    if "RAY_AUTH_TOKEN" not in {e["name"] for e in submitter.get("env", [])}:
        out.append("RayJob: the submitter has no RAY_AUTH_TOKEN (it can't reach a token-protected head)")
    preset = job["spec"]["entrypoint"].split()[-1]
    if preset not in presets.names():
        out.append(f"RayJob: the entrypoint runs {preset!r}, which is no preset name")
    if job["spec"]["clusterSelector"]["ray.io/cluster"] != cluster["metadata"]["name"]:
        out.append("RayJob: its clusterSelector names another cluster")
    return out


def key_problems(objs: list[dict], secret: dict) -> list[str]:
    """Every CIFAR_SWEEPS_* variable is a setting; every Secret key used exists; every
    secret file a pod reads as settings (cifar_sweeps_*) is a setting."""
    fields = set(Settings.model_fields)
    out, env_names, secret_keys = [], set(), set()
    for o in objs:
        if o["kind"] == "ConfigMap":
            env_names |= set(o["data"])
    for c in containers(objs):
        for e in c.get("env", []):
            env_names.add(e["name"])
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                secret_keys.add(ref["key"])

    def walk(v):
        if isinstance(v, dict):
            if "secretName" in v:
                secret_keys.update(i["key"] for i in v.get("items", []))
            for sub in v.values():
                walk(sub)
        elif isinstance(v, list):
            for sub in v:
                walk(sub)

    walk(objs)
    for name in sorted(env_names):
        if name.startswith("CIFAR_SWEEPS_") and name not in OTHER_ENV and name[13:].lower() not in fields:
            out.append(f"variable {name}: no such setting")
    have = set(secret["stringData"])
    out += [f"Secret key {k}: used by a pod, missing from the Secret" for k in sorted(secret_keys - have)]
    for k in sorted(have - OTHER_SECRETS):
        if not k.startswith("cifar_sweeps_") or k[13:] not in fields:
            out.append(f"Secret key {k}: no setting reads it")
    return out


def pod_specs(objs: list[dict]) -> list[tuple[str, dict]]:
    """(a name, the pod spec) of every pod the objects make: Deployments' and StatefulSets'
    templates, the RayCluster's head and worker groups, the RayJob's submitter."""
    out = []
    for o in objs:
        name, spec = f"{o['kind']}/{o['metadata']['name']}", o.get("spec") or {}
        if o["kind"] in ("Deployment", "StatefulSet"):
            out.append((name, spec["template"]["spec"]))
        elif o["kind"] == "RayCluster":
            out.append((f"{name} head", spec["headGroupSpec"]["template"]["spec"]))
            out += [(f"{name} {g['groupName']}", g["template"]["spec"]) for g in spec["workerGroupSpecs"]]
        elif o["kind"] == "RayJob":
            out.append((f"{name} submitter", spec["submitterPodTemplate"]["spec"]))
    return out


def _reads_secret_files(pod: dict) -> bool:
    return any("secret" in v for v in pod.get("volumes", []))


def security_problems(objs: list[dict]) -> list[str]:
    """Every pod non-root with the runtime's seccomp profile; every container with no
    privilege escalation, no capability and a read-only root; secrets mounted 0440 readable
    (an fsGroup); no service-account token but where Kubernetes is talked to (the Ray head's
    autoscaler); images pinned; liveness that depends on nothing."""
    out = []
    for name, pod in pod_specs(objs):
        sc = pod.get("securityContext") or {}
        if sc.get("runAsNonRoot") is not True or not sc.get("runAsUser"):
            out.append(f"{name}: may run as root (runAsNonRoot and runAsUser)")
        if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            out.append(f"{name}: no RuntimeDefault seccomp profile")
        if _reads_secret_files(pod) and not sc.get("fsGroup"):
            out.append(f"{name}: mounts secrets 0440 with no fsGroup: its user can't read them")
        if pod.get("automountServiceAccountToken") is not False and not name.endswith(" head"):
            out.append(f"{name}: the service-account token is mounted (automountServiceAccountToken)")
        for c in pod["containers"]:
            csc = c.get("securityContext") or {}
            if csc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{name} {c['name']}: privilege escalation allowed")
            if "ALL" not in (csc.get("capabilities") or {}).get("drop", []):
                out.append(f"{name} {c['name']}: capabilities not dropped")
            if csc.get("readOnlyRootFilesystem") is not True:
                out.append(f"{name} {c['name']}: a writable root filesystem")
            tag = c["image"].rsplit("/", 1)[-1]
            if "@sha256:" not in tag and (":" not in tag or re.fullmatch(r"latest|\d+", tag.split(":")[1])):
                out.append(f"{name} {c['name']}: image {c['image']} is not pinned (a version or a digest)")
            live = ((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path")
            if live == "/health":
                out.append(f"{name} {c['name']}: liveness on /health, which depends on the store and Ray")
    return out


def _selects(policy: dict, labels: dict) -> bool:
    want = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in want.items())


def network_problems(objs: list[dict]) -> list[str]:
    """PostgreSQL admits only the API and Ray's pods on 5432; Ray's pods admit each other,
    and the API and the submitter on 8265 only; every group is covered by a policy."""
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    api, pg = {"app.kubernetes.io/name": "cifar-sweeps-api"}, {"app.kubernetes.io/name": "cifar-sweeps-postgres"}
    ray = {"ray.io/cluster": "cifar-sweeps"}
    out = []
    for what, labels in (("the API", api), ("PostgreSQL", pg), ("Ray's pods", ray)):
        if not any(_selects(p, labels) and "Ingress" in p["spec"].get("policyTypes", []) for p in policies):
            out.append(f"no network policy selects {what}: every pod in the cluster reaches it")
    for p in policies:
        for rule in p["spec"].get("ingress", []):
            sources = [f.get("podSelector", {}).get("matchLabels") for f in rule.get("from", [{}])]
            ports = sorted(x["port"] for x in rule.get("ports", []))
            if _selects(p, pg) and (ports != [5432] or any(s not in (api, ray) for s in sources)):
                out.append(
                    f"NetworkPolicy/{p['metadata']['name']}: PostgreSQL admits {sources} on {ports or 'any port'}"
                )
            if _selects(p, ray) and any(s != ray for s in sources) and ports != [8265]:
                out.append(f"NetworkPolicy/{p['metadata']['name']}: Ray admits {sources} on {ports or 'any port'}")
    return out


def problems(folder: Path, objs: list[dict], secret: dict) -> list[str]:
    return (
        schema_problems(objs + [secret])
        + resource_problems(objs)
        + image_problems(objs, folder)
        + kuberay_problems(objs)
        + key_problems(objs, secret)
        + security_problems(objs)
        + network_problems(objs)
    )


# ---------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def base() -> list[dict]:
    objs, how = render(K8S / "base")
    print(f"rendered with {how}")
    return objs


@pytest.mark.parametrize("folder", ["base", "overlays/single-node"])
def test_the_deployment_renders_and_has_no_problem(folder):
    objs, how = render(K8S / folder)
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(
        [
            "ConfigMap",
            "PersistentVolumeClaim",
            "Service",
            "StatefulSet",
            "Service",
            "Deployment",
            "RayCluster",
            "RayJob",
            "NetworkPolicy",
            "NetworkPolicy",
            "NetworkPolicy",
        ]
    ), (how, kinds)
    assert problems(K8S / folder, objs, secret_example()) == [], how


def test_own_loader_renders_what_kubectl_does():
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not on PATH: the other tests use this file's loader")
    for folder in ("base", "overlays/single-node"):
        theirs, _ = render(K8S / folder)
        key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
        ours = {key(o): o for o in own_render(K8S / folder)}
        for o in theirs:
            assert containers([o]) == containers([ours[key(o)]]), key(o)


def test_a_missing_secret_key_is_found(base):
    secret = secret_example()
    del secret["stringData"]["ray_auth_token"]
    assert any("ray_auth_token" in p and "missing" in p for p in problems(K8S / "base", base, secret))


def test_a_limit_without_a_request_is_found(base):
    objs = copy.deepcopy(base)
    (api,) = [o for o in objs if o["kind"] == "Deployment"]
    del api["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"]
    assert "container api: a limit of memory without a request" in resource_problems(objs)


def test_a_wrong_image_tag_is_found(base):
    objs = copy.deepcopy(base)
    (job,) = [o for o in objs if o["kind"] == "RayJob"]
    job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["image"] = "registry.example.org/cifar-sweeps:0.0.9"
    assert any("different images" in p for p in image_problems(objs, K8S / "base"))


def test_the_kuberay_fields_the_docs_rely_on_are_checked(base):
    objs = copy.deepcopy(base)
    (cluster,) = [o for o in objs if o["kind"] == "RayCluster"]
    cluster["spec"]["enableInTreeAutoscaling"] = False
    cluster["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] = "4"
    (job,) = [o for o in objs if o["kind"] == "RayJob"]
    job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["env"] = []
    found = kuberay_problems(objs)
    assert len(found) == 3 and any("autoscal" in p for p in found) and any("num-cpus" in p for p in found)


def test_a_schema_error_and_an_unknown_setting_are_found(base):
    objs = copy.deepcopy(base)
    (api,) = [o for o in objs if o["kind"] == "Deployment"]
    api["spec"]["replicas"] = "one"
    api["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "CIFAR_SWEEPS_NO_SUCH", "value": "1"})
    assert any(p.startswith("Deployment/cifar-sweeps-api") for p in schema_problems(objs))
    assert "variable CIFAR_SWEEPS_NO_SUCH: no such setting" in key_problems(objs, secret_example())


def test_a_pod_that_may_run_as_root_or_keeps_privileges_is_found(base):
    objs = copy.deepcopy(base)
    (api,) = [o for o in objs if o["kind"] == "Deployment"]
    pod = api["spec"]["template"]["spec"]
    del pod["securityContext"]["runAsNonRoot"]
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["containers"][0]["livenessProbe"]["httpGet"]["path"] = "/health"
    del pod["automountServiceAccountToken"]
    found = security_problems(objs)
    assert len(found) == 4, found
    assert any("may run as root" in p for p in found) and any("privilege escalation" in p for p in found)
    assert any("liveness on /health" in p for p in found) and any("service-account token" in p for p in found)


def test_a_ray_pod_that_cant_read_its_secrets_or_a_moving_image_tag_is_found(base):
    objs = copy.deepcopy(base)
    (cluster,) = [o for o in objs if o["kind"] == "RayCluster"]
    cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }  # no fsGroup: the secrets mounted 0440 belong to root's group
    (pg,) = [o for o in objs if o["kind"] == "StatefulSet"]
    pg["spec"]["template"]["spec"]["containers"][0]["image"] = "postgres:16"
    found = security_problems(objs)
    assert any("cpu: mounts secrets 0440 with no fsGroup" in p for p in found), found
    assert any("image postgres:16 is not pinned" in p for p in found), found


def test_a_network_policy_that_opens_gcs_or_postgresql_to_the_cluster_is_found(base):
    objs = copy.deepcopy(base)
    (ray_policy,) = [o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "cifar-sweeps-ray"]
    ray_policy["spec"]["ingress"].append({"from": [{"podSelector": {}}], "ports": [{"port": 6379}]})
    (pg_policy,) = [
        o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "cifar-sweeps-postgres"
    ]
    del pg_policy["spec"]["ingress"][0]["ports"]
    found = network_problems(objs)
    assert any("Ray admits" in p and "[6379]" in p for p in found), found
    assert any("PostgreSQL admits" in p and "any port" in p for p in found), found
    objs = [o for o in objs if o["kind"] != "NetworkPolicy"]
    assert len(network_problems(objs)) == 3


# ---------------------------------------------------------------- compose


def test_compose_links_a_browser_can_follow_no_default_password_and_real_settings():
    text = (ROOT / "docker" / "compose.yaml").read_text()
    c = yaml.safe_load(text)  # PyYAML resolves the anchors and merge keys as compose does
    api = c["services"]["api"]["environment"]
    assert api["RAY_ADDRESS"] == "http://ray-head:8265"  # the service's own way in
    public = api["CIFAR_SWEEPS_PUBLIC_DASHBOARD_URL"]
    assert "127.0.0.1:8265" in public and "ray-head" not in public  # a browser's way in
    assert "127.0.0.1:8265:8265" in c["services"]["ray-head"]["ports"]
    assert ":-sweeps}" not in text and "POSTGRES_PASSWORD:?" in text  # no default password
    fields = set(Settings.model_fields)
    for name, svc in c["services"].items():
        for key in svc.get("environment") or {}:
            if key.startswith("CIFAR_SWEEPS_"):
                assert key[13:].lower() in fields, (name, key)
