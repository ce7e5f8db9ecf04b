//! The wasm-bindgen glue as browsers get it: without its comments (the
//! JSDoc of every export, which the `.d.ts` beside it keeps, and a line
//! naming each closure cast), its indentation and its blank lines.
//!
//! Not a minifier: names, spacing inside lines and line breaks stay as they
//! are (a line break can end a statement in JavaScript), so the code runs
//! the same. It reads the text as JavaScript tokens far enough to know what
//! is a comment: strings (`'`, `"`) and template literals are copied
//! untouched, indentation included, wherever they span lines. It does not
//! know regular-expression literals, which the glue of this wasm-bindgen
//! version has none of: [`strip`] returns `None` when it meets a `/` that
//! could begin one, or when a string, template or comment never ends, and
//! the glue then ships as generated.

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
                // A division follows a value; anything else could begin a
                // regular expression.
                if !(last_code.is_ascii_alphanumeric() || matches!(last_code, b')' | b']' | b'_' | b'$')) {
                    return None;
                }
                out.push('/');
                line_blank = false;
                last_code = c;
                i += 1;
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
        // A regular expression, a string or comment that never ends.
        assert_eq!(strip("const r = /a'b/.test(s);\n"), None);
        assert_eq!(strip("const s = \"open\n\";\n"), None);
        assert_eq!(strip("const t = `open"), None);
        assert_eq!(strip("f(); /* open"), None);
    }

    #[test]
    fn non_ascii_text_survives() {
        assert_eq!(strip("  const s = \"é → ✓\"; // ü\n  g(\"…\");\n").unwrap(), "const s = \"é → ✓\";\ng(\"…\");\n");
    }
}
