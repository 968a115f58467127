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


def test_the_product_never_imports_the_test_world():
    for name in sorted(os.listdir(PRODUCT)):
        if name.endswith('.py'):
            modules = list(imported_modules(os.path.join(PRODUCT, name)))
            assert not [m for m in modules if m.split('.')[0] == 'testworld'], name


def test_the_product_package_holds_no_test_world_module():
    test_world = {'sandbox', 'simcamd', 'privatelibvirtd', 'qemuworld', 'guestimage', 'siteworld'}
    assert not {name[:-3] for name in os.listdir(PRODUCT) if name.endswith('.py')} & test_world
    assert not os.path.exists(os.path.join(PRODUCT, 'data', 'registry-local.json'))
