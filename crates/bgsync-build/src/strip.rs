//! The wasm-bindgen glue as browsers get it: without its comments (the
//! JSDoc of every export, which the `.d.ts` beside it keeps, and a line
//! naming each closure cast), its indentation and its blank lines.
//!
//! Not a minifier: names, spacing inside lines and line breaks stay as they
//! are (a line break can end a statement in JavaScript), so the code runs
//! the same. It reads the text as JavaScript tokens far enough to know what
//! is a comment: strings (`'`, `"`), template literals and regular
//! expressions are copied untouched, indentation included, wherever they
//! span lines. A `/` is a division after a name, a number, `)` or `]`, and
//! begins a regular expression elsewhere (after `return` too). [`strip`]
//! returns `None` when a string, template, regular expression or comment
//! never ends, and the text then ships as written.

/// `js` without comments, indentation and blank lines, or `None` where the
/// text is not what this reader understands (see the module's docs).
pub fn strip(js: &str) -> Option<String> {
    let bytes = js.as_bytes();
    let mut out = String::with_capacity(js.len());
    // Where the current output line starts: only whitespace there so far.
    let mut line_blank = true;
    // The last byte of code written (not whitespace nor comment), to tell
    // a division from a regular expression.
    let mut last_code: u8 = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                if !line_blank {
                    // Trailing spaces go too.
                    let kept = out.trim_end_matches([' ', '\t']).len();
                    out.truncate(kept);
                    out.push('\n');
                }
                line_blank = true;
                i += 1;
            }
            b' ' | b'\t' | b'\r' if line_blank => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                // To the end of the line; the line break stays.
                i = js[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = js[i + 2..].find("*/")? + i + 4;
                // Between two tokens, a comment stands for a space, or for
                // a line break if it spans lines (which can end a statement).
                if !line_blank {
                    out.push(if js[i..end].contains('\n') { '\n' } else { ' ' });
                    line_blank = out.ends_with('\n');
                }
                i = end;
            }
            b'/' => {
                // After a value it divides; anywhere else it begins a
                // regular expression, copied as it is.
                let end = if divides(&out, last_code) { i + 1 } else { regex_end(bytes, i)? };
                out.push_str(&js[i..end]);
                line_blank = false;
                last_code = bytes[end - 1];
                i = end;
            }
            b'\'' | b'"' | b'`' => {
                let end = literal_end(bytes, i)?;
                out.push_str(&js[i..end]);
                line_blank = false;
                last_code = c;
                i = end;
            }
            _ => {
                // Whole characters: the glue is UTF-8 and may hold any.
                let len = js[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&js[i..i + len]);
                if !c.is_ascii_whitespace() {
                    line_blank = false;
                    last_code = c;
                }
                i += len;
            }
        }
    }
    Some(out)
}

/// Whether a `/` after `out` (whose last code byte is `last`) divides: it
/// follows a value (a name, a number, `)` or `]`), not a keyword such as
/// `return` that an expression follows.
fn divides(out: &str, last: u8) -> bool {
    if matches!(last, b')' | b']') {
        return true;
    }
    if !(last.is_ascii_alphanumeric() || matches!(last, b'_' | b'$')) {
        return false;
    }
    let text = out.trim_end();
    let word = &text[text.trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$').len()..];
    !matches!(
        word,
        "return"
            | "typeof"
            | "case"
            | "do"
            | "else"
            | "in"
            | "of"
            | "new"
            | "delete"
            | "void"
            | "throw"
            | "instanceof"
            | "yield"
            | "await"
    )
}

/// The index just past the regular expression literal (and its flags) that
/// starts at `start`; `None` if the line ends first.
fn regex_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    let mut class = false;
    loop {
        match *bytes.get(i)? {
            b'\\' => i += 1,
            b'\n' => return None,
            b'[' => class = true,
            b']' => class = false,
            b'/' if !class => break,
            _ => {}
        }
        i += 1;
    }
    i += 1;
    while bytes.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
        i += 1;
    }
    Some(i)
}

/// The index just past the string or template literal that starts at
/// `start`. A template's `${…}` is copied as part of it (a quote of the
/// same kind inside one would end it early, and the glue has none).
fn literal_end(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\n' if quote != b'`' => return None,
            c if c == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::strip;

    #[test]
    fn comments_indentation_and_blank_lines_go() {
        let js = "let a = (function(exports) {\n    /**\n     * Doc.\n     * @param {string} x\n     */\n    function f(x) {\n        // a note\n        return x; // why\n    }\n\n    exports.f = f;\n})({});\n";
        assert_eq!(
            strip(js).unwrap(),
            "let a = (function(exports) {\nfunction f(x) {\nreturn x;\n}\nexports.f = f;\n})({});\n"
        );
    }

    #[test]
    fn strings_and_templates_are_kept_as_written() {
        let js = "  const s = \"// not a comment /* nor this */\";\n  const t = 'it\\'s // kept';\n  const u = `a\n    ${b} // kept\n  c`;\n";
        assert_eq!(
            strip(js).unwrap(),
            "const s = \"// not a comment /* nor this */\";\nconst t = 'it\\'s // kept';\nconst u = `a\n    ${b} // kept\n  c`;\n"
        );
    }

    #[test]
    fn a_comment_between_tokens_stands_for_a_space_and_divisions_stay() {
        assert_eq!(strip("x = a/*one*/b / 2;\ny = (c) / d[0] / e;\n").unwrap(), "x = a b / 2;\ny = (c) / d[0] / e;\n");
        assert_eq!(strip("return/*\n*/x\n").unwrap(), "return\nx\n");
    }

    #[test]
    fn what_it_cannot_read_is_left_alone() {
        // A string, template, regular expression or comment that never ends.
        assert_eq!(strip("const r = /a'b\n/;\n"), None);
        assert_eq!(strip("const s = \"open\n\";\n"), None);
        assert_eq!(strip("const t = `open"), None);
        assert_eq!(strip("f(); /* open"), None);
    }

    #[test]
    fn regular_expressions_are_kept_as_written() {
        let js = "  s.replace(/\\.js(\\?.*)?$/, \".css\"); // css\n  t = x.replace(/ /g, '-') / 2;\n  if (/[/'\"]\\//.test(u)) return /a*b/i;\n";
        assert_eq!(
            strip(js).unwrap(),
            "s.replace(/\\.js(\\?.*)?$/, \".css\");\nt = x.replace(/ /g, '-') / 2;\nif (/[/'\"]\\//.test(u)) return /a*b/i;\n"
        );
    }

    #[test]
    fn non_ascii_text_survives() {
        assert_eq!(strip("  const s = \"é → ✓\"; // ü\n  g(\"…\");\n").unwrap(), "const s = \"é → ✓\";\ng(\"…\");\n");
    }
}
