import importlib

PACKAGES = ["core", "heads", "lora", "quant", "m2", "glue", "kaggle"]


def test_every_package_imports_with_one_version():
    versions = {importlib.import_module(f"mlxbert_{p}").__version__ for p in PACKAGES}
    assert versions == {"0.1.0"}
