from rockit.camvirt.shared.quoting import MAX_CLIENT_TEXT, one_line, quote


def test_quote_escapes_newlines_and_control_characters():
    text = quote('cam1\n2026-01-01 ERROR: forged\r\x1b[31m\x00')
    assert text.isprintable() and '\\n' in text and '\\x1b' in text


def test_quote_cuts_long_strings_and_lists_cheaply():
    assert len(quote('x' * 10 ** 6)) <= MAX_CLIENT_TEXT + 10
    assert len(quote(list(range(10 ** 5)))) < 100
    assert len(quote([[['deep' * 1000]]])) < 200


def test_one_line_escapes_and_cuts_whole_lines():
    assert one_line('a\nb') == 'a\\nb'
    assert len(one_line('y' * 10000)) <= 4 * MAX_CLIENT_TEXT + 3
    assert one_line('plain text') == 'plain text'
