import json
import subprocess
import sys

import mlxbert_lora


def test_package_imports_and_has_version():
    assert mlxbert_lora.__version__ == "0.1.0"
    assert "__version__" in mlxbert_lora.__all__


def test_no_module_of_the_package_loads_another_mlxbert_package():
    # The test environment also holds mlxbert-quant (for the tests of QLoRA on its layer), so
    # a stray import would not fail here by itself: import every module in a fresh process
    # and list the mlxbert packages that came with them.
    code = (
        "import importlib, json, pkgutil, sys, mlxbert_lora\n"
        "for m in pkgutil.walk_packages(mlxbert_lora.__path__, 'mlxbert_lora.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules if n.startswith('mlxbert')})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == ["mlxbert_lora"]
