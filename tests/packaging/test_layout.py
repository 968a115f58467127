"""The product and its test world apart: nothing an observatory host runs needs the test world."""

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRODUCT = os.path.join(REPO, 'rockit', 'camvirt')


def imported_modules(path):
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or ''


def product_modules():
    for folder, _, names in os.walk(PRODUCT):
        yield from (os.path.join(folder, name) for name in sorted(names) if name.endswith('.py'))


def test_the_product_never_imports_the_test_world():
    for path in product_modules():
        modules = list(imported_modules(path))
        assert not [m for m in modules if m.split('.')[0] == 'testworld'], path


def test_the_product_package_holds_no_test_world_module():
    test_world = {'sandbox', 'simcamd', 'privatelibvirtd', 'qemuworld', 'guestimage', 'siteworld'}
    assert not {os.path.basename(path)[:-3] for path in product_modules()} & test_world
    assert not os.path.exists(os.path.join(PRODUCT, 'data', 'registry-local.json'))
