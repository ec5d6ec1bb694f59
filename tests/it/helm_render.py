"""Renders and lints the Helm chart with Helm's own engine (helm-python-sdk:
Helm's Go SDK behind a C ABI, no helm binary needed), for tests/it/deploy.rs.

    python3 tests/it/helm_render.py CHART VALUES_JSON_LIST

Prints one JSON object: {"lint": <helm lint report>, "renders": [{template:
text}, ...]} with one render per values object, in order. Exits 3 when the
SDK is not installed (`pip install helm-python-sdk`).
"""

import json
import sys

try:
    import helm_python as helm
except ImportError:
    print("helm-python-sdk is not installed (pip install helm-python-sdk)", file=sys.stderr)
    sys.exit(3)


def main():
    chart, cases = sys.argv[1], json.loads(sys.argv[2])
    lint = helm.lint(chart, strict=True, kube_version="v1.30.0")
    renders = []
    with helm.Chart.load(chart) as c:
        for values in cases:
            try:
                renders.append(c.render(values, name="sy", namespace="gateways", is_install=True))
            except helm.HelmError as e:
                renders.append({"error": str(e)})
    json.dump({"lint": lint, "renders": renders}, sys.stdout)


main()
