from rockit.camvirt.daemon.arguments import command_problem, domains_problem, force_problem, is_camera_id


def test_domains_of_the_right_shape_pass():
    for domains in (None, 'cam1', ['cam1'], ['cam1', 'cam2'], ('cam1',)):
        assert domains_problem(domains) is None, domains


def test_domains_of_any_other_shape_are_named():
    for domains, words in (([], 'empty list'), ('', 'empty name'), (5, 'not a name'), ({'cam1': 1}, 'not a name'),
                           (['cam1', 7], '7 is not a domain name'), ([None], 'None is not'), ([''], "'' is not")):
        problem = domains_problem(domains)
        assert problem and words in problem and problem.startswith('domains: '), (domains, problem)


def test_force_is_a_bool_or_none():
    for force in (None, True, False):
        assert force_problem(force) is None
    for force in ('false', 0, 1, 'yes', [True]):
        assert force_problem(force).startswith('force: '), force


def test_command_problem_names_the_first_problem():
    assert command_problem(['cam1'], 'false').startswith('force: ')
    assert command_problem([], 'false').startswith('domains: ')
    assert command_problem('cam1') is None


def test_a_problem_quotes_a_huge_value_short_and_on_one_line():
    problem = domains_problem(['x\n' * 100000])
    assert problem is None  # a weird name is a name: unknown later, quoted there
    problem = domains_problem([['x\ny' * 100000]])
    assert '\n' not in problem and len(problem) < 200


def test_camera_ids_are_strings():
    assert is_camera_id('cam1') and not is_camera_id(['cam1']) and not is_camera_id(1)
