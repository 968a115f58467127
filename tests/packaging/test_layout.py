"""The product and its test world apart: nothing an observatory host runs needs the test world."""

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PRODUCT = os.path.join(REPO, 'rockit', 'camvirt')


def product_files():
    for folder, _dirs, names in os.walk(PRODUCT):
        for name in sorted(names):
            if name.endswith('.py'):
                yield os.path.join(folder, name)


def side_of(path):
    """The product folder a file lives in ('' for rockit/camvirt itself)."""
    parts = os.path.relpath(path, PRODUCT).split(os.sep)
    return parts[0] if len(parts) > 1 else ''


def imports_of(path):
    """Absolute names of what a product file imports, wherever in the file (relative ones resolved)."""
    package = ['rockit', 'camvirt'] + os.path.relpath(os.path.dirname(path), PRODUCT).split(os.sep)
    package = [p for p in package if p != '.']
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = '.'.join(base + ([node.module] if node.module else []))
            yield module
            if node.module is None:
                yield from (module + '.' + alias.name for alias in node.names)


def product_side(module):
    """'shared', 'virt', 'wire', 'daemon', 'client' (or '' for the package root) of a product module."""
    parts = module.split('.')
    if parts[:2] != ['rockit', 'camvirt']:
        return None
    return parts[2] if len(parts) > 3 else ''


# Which product folders each folder may import: the arrows only point down. The client's one arrow
# into the libvirt side is its read-only device listing for `camvirt config`.
ALLOWED = {
    'shared': {'shared', ''},
    'virt': {'shared', 'virt', ''},
    'wire': {'shared', 'wire', ''},
    'daemon': {'shared', 'virt', 'wire', 'daemon', ''},
    'client': {'shared', 'client', 'virt', ''},
    '': {'shared', ''},  # the package root's version lookup
}


def test_the_product_never_imports_the_test_world():
    for path in product_files():
        assert not [m for m in imports_of(path) if m.split('.')[0] == 'testworld'], path


def test_arrows_point_down_between_the_product_folders():
    for path in product_files():
        side = side_of(path)
        wrong = {m for m in imports_of(path) if product_side(m) not in (None, *ALLOWED[side])}
        assert not wrong, '{} ({}) imports {}'.format(path, side or 'root', sorted(wrong))


def test_libvirt_is_imported_only_on_the_libvirt_side():
    for path in product_files():
        if side_of(path) != 'virt':
            assert 'libvirt' not in {m.split('.')[0] for m in imports_of(path)}, path


def test_only_the_client_draws_on_a_terminal():
    for path in product_files():
        if side_of(path) in ('shared', 'wire', 'virt', 'daemon'):
            assert 'rich' not in {m.split('.')[0] for m in imports_of(path)}, path


def module_name(path):
    parts = ['rockit', 'camvirt'] + os.path.relpath(path, PRODUCT)[:-3].split(os.sep)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def test_no_import_circles_in_the_product():
    modules = {module_name(p): p for p in product_files()}
    graph = {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}
    done, on_path = set(), []

    def visit(name):
        assert name not in on_path, 'import circle: ' + ' -> '.join(on_path[on_path.index(name):] + [name])
        if name in done:
            return
        on_path.append(name)
        for other in sorted(graph[name]):
            # A package's __init__ is imported by its modules' importers: not an arrow of its own.
            if not modules[other].endswith('__init__.py'):
                visit(other)
        on_path.pop()
        done.add(name)
    for name in sorted(graph):
        visit(name)


def test_the_product_package_holds_no_test_world_module():
    test_world = {'sandbox', 'simcamd', 'privatelibvirtd', 'qemuworld', 'guestimage', 'siteworld', 'world'}
    assert not {os.path.basename(p)[:-3] for p in product_files()} & test_world
    assert not os.path.exists(os.path.join(PRODUCT, 'data', 'registry-local.json'))
