//! Short names for what only the glue and the wasm say to each other.
//!
//! wasm-bindgen names each import `__wbg_<method>_<16 hex digits>` in a
//! module `./<crate>_bg.js`, and each closure's entry point
//! `wasm_bindgen__convert__closures_____invoke__h<16 hex digits>`; both
//! sides carry every name once more (the worker: 154 imports, 8,288 bytes
//! of names in its import section, and the same again as the glue's keys).
//! Nothing else sees these names, so [`rename`] gives them short ones
//! (`a0`, `a1`, …, module `m`, entry points `__i0`, …) in both at once.
//! Where the two do not agree as expected (an import or entry point the
//! glue does not name, several import modules) it changes nothing.

use std::collections::HashMap;

/// The module and glue with the private names shortened, or `None` where
/// they do not fit what this expects (see the module's docs).
pub fn rename(wasm: &[u8], glue: &str) -> Option<(Vec<u8>, String)> {
    if wasm.get(..8)? != b"\0asm\x01\0\0\0" {
        return None;
    }
    let mut names: HashMap<String, String> = HashMap::new();
    let mut module_name: Option<String> = None;
    let mut out = wasm[..8].to_vec();
    let mut i = 8;
    while i < wasm.len() {
        let id = wasm[i];
        let (size, start) = leb(wasm, i + 1)?;
        let end = start.checked_add(size as usize).filter(|&end| end <= wasm.len())?;
        let body = &wasm[start..end];
        let new_body = match id {
            2 => Some(imports(body, &mut names, &mut module_name)?),
            7 => Some(exports(body, &mut names)?),
            _ => None,
        };
        match new_body {
            Some(body) => {
                out.push(id);
                put_leb(&mut out, body.len() as u32);
                out.extend_from_slice(&body);
            }
            None => out.extend_from_slice(&wasm[i..end]),
        }
        i = end;
    }
    let module_name = module_name?;
    // The short entry points become names in the glue's scope too.
    let taken = |word: &str| word.strip_prefix("__i").is_some_and(|n| n.bytes().all(|c| c.is_ascii_alphanumeric()));
    if words(glue).any(|(_, word)| taken(word)) {
        return None;
    }
    // The glue names the module once, as a string key.
    let quoted = format!("\"{module_name}\"");
    if glue.matches(&quoted).count() != 1 {
        return None;
    }
    let glue = glue.replace(&quoted, "\"m\"");
    let glue = rename_identifiers(&glue, &names)?;
    Some((out, glue))
}

/// The import section with each import's module `m` and its name short.
fn imports(body: &[u8], names: &mut HashMap<String, String>, module: &mut Option<String>) -> Option<Vec<u8>> {
    let (count, mut i) = leb(body, 0)?;
    let mut out = Vec::with_capacity(body.len());
    put_leb(&mut out, count);
    for n in 0..count {
        let (module_name, next) = name(body, i)?;
        let (field, next) = name(body, next)?;
        match module {
            Some(known) if *known != module_name => return None,
            _ => *module = Some(module_name),
        }
        let desc_end = import_desc_end(body, next)?;
        let short = format!("a{}", base36(n));
        names.insert(field, short.clone());
        put_name(&mut out, "m");
        put_name(&mut out, &short);
        out.extend_from_slice(&body[next..desc_end]);
        i = desc_end;
    }
    (i == body.len()).then_some(out)
}

/// The export section with the closures' entry points renamed.
fn exports(body: &[u8], names: &mut HashMap<String, String>) -> Option<Vec<u8>> {
    const INVOKE: &str = "wasm_bindgen__convert__closures_____invoke__";
    let (count, mut i) = leb(body, 0)?;
    let mut out = Vec::with_capacity(body.len());
    put_leb(&mut out, count);
    let mut renamed = 0u32;
    for _ in 0..count {
        let (field, next) = name(body, i)?;
        let (_, end) = leb(body, next + 1)?;
        if field.starts_with(INVOKE) {
            let short = format!("__i{}", base36(renamed));
            renamed += 1;
            put_name(&mut out, &short);
            names.insert(field, short);
        } else {
            put_name(&mut out, &field);
        }
        out.extend_from_slice(&body[next..end]);
        i = end;
    }
    (i == body.len()).then_some(out)
}

/// Every identifier of `glue` that `names` has, renamed; `None` if one of
/// `names` never occurs (the glue and the module would not agree).
fn rename_identifiers(glue: &str, names: &HashMap<String, String>) -> Option<String> {
    let mut out = String::with_capacity(glue.len());
    let mut found = std::collections::HashSet::new();
    let mut copied = 0;
    for (start, word) in words(glue) {
        if let Some(short) = names.get(word) {
            out.push_str(&glue[copied..start]);
            out.push_str(short);
            copied = start + word.len();
            found.insert(word);
        }
    }
    out.push_str(&glue[copied..]);
    (found.len() == names.len()).then_some(out)
}

/// The words of `text` made of identifier characters, with where each starts.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + text[at..].find(is_ident)?;
        let end = text[start..].find(|c| !is_ident(c)).map_or(text.len(), |n| start + n);
        at = end;
        Some((start, &text[start..end]))
    })
}

/// Where an import's description (after its two names) ends.
fn import_desc_end(body: &[u8], i: usize) -> Option<usize> {
    let limits = |i: usize| -> Option<usize> {
        let flags = *body.get(i)?;
        let (_, next) = leb(body, i + 1)?;
        if flags & 1 == 1 {
            Some(leb(body, next)?.1)
        } else {
            Some(next)
        }
    };
    match *body.get(i)? {
        0x00 => Some(leb(body, i + 1)?.1), // function: its type
        0x01 => limits(i + 2),             // table: element type, limits
        0x02 => limits(i + 1),             // memory: limits
        0x03 => Some(i + 3),               // global: value type, mutability
        0x04 => Some(leb(body, i + 2)?.1), // tag: attribute, type
        _ => None,
    }
}

fn name(body: &[u8], i: usize) -> Option<(String, usize)> {
    let (len, start) = leb(body, i)?;
    let end = start.checked_add(len as usize).filter(|&end| end <= body.len())?;
    Some((String::from_utf8(body[start..end].to_vec()).ok()?, end))
}

fn put_name(out: &mut Vec<u8>, name: &str) {
    put_leb(out, name.len() as u32);
    out.extend_from_slice(name.as_bytes());
}

/// An unsigned LEB128 number at `i` (up to 32 bits) and where it ends.
fn leb(bytes: &[u8], mut i: usize) -> Option<(u32, usize)> {
    let mut value: u64 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(i)?;
        i += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return u32::try_from(value).ok().map(|v| (v, i));
        }
    }
    None
}

fn put_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module importing `f` and `g` from `./x_bg.js` (a function and a
    /// memory) and exporting `run` and one closure entry point.
    fn module() -> Vec<u8> {
        let mut imports = Vec::new();
        put_leb(&mut imports, 2);
        put_name(&mut imports, "./x_bg.js");
        put_name(&mut imports, "__wbg_log_0123456789abcdef");
        imports.extend_from_slice(&[0x00, 0x00]);
        put_name(&mut imports, "./x_bg.js");
        put_name(&mut imports, "__wbindgen_memory");
        imports.extend_from_slice(&[0x02, 0x01, 0x01, 0x80, 0x01]);
        let mut exports = Vec::new();
        put_leb(&mut exports, 2);
        put_name(&mut exports, "run");
        exports.extend_from_slice(&[0x00, 0x01]);
        put_name(&mut exports, "wasm_bindgen__convert__closures_____invoke__h0011223344556677");
        exports.extend_from_slice(&[0x00, 0x02]);
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        // A type section, copied as it is.
        wasm.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]);
        for (id, body) in [(2u8, imports), (7, exports)] {
            wasm.push(id);
            put_leb(&mut wasm, body.len() as u32);
            wasm.extend_from_slice(&body);
        }
        wasm
    }

    const GLUE: &str = "function __wbg_get_imports() {\nconst import0 = {\n__wbg_log_0123456789abcdef: function(arg0) {\nconsole.log(arg0);\n},\n__wbindgen_memory: function() {\nreturn wasm.memory;\n},\n};\nreturn { \"./x_bg.js\": import0 };\n}\nfunction wasm_bindgen__convert__closures_____invoke__h0011223344556677(a) {\nwasm.wasm_bindgen__convert__closures_____invoke__h0011223344556677(a);\n}\nwasm.run();\n";

    #[test]
    fn imports_and_closure_entry_points_get_short_names_on_both_sides() {
        let (wasm, glue) = rename(&module(), GLUE).unwrap();
        assert_eq!(
            glue,
            "function __wbg_get_imports() {\nconst import0 = {\na0: function(arg0) {\nconsole.log(arg0);\n},\na1: function() {\nreturn wasm.memory;\n},\n};\nreturn { \"m\": import0 };\n}\nfunction __i0(a) {\nwasm.__i0(a);\n}\nwasm.run();\n"
        );
        let mut expected = b"\0asm\x01\0\0\0".to_vec();
        expected.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]);
        expected.extend_from_slice(&[0x02, 0x12, 0x02, 1, b'm', 2, b'a', b'0', 0x00, 0x00, 1, b'm', 2, b'a', b'1']);
        expected.extend_from_slice(&[0x02, 0x01, 0x01, 0x80, 0x01]);
        expected.extend_from_slice(&[
            0x07, 0x0e, 0x02, 3, b'r', b'u', b'n', 0x00, 0x01, 4, b'_', b'_', b'i', b'0', 0x00, 0x02,
        ]);
        assert_eq!(wasm, expected);
    }

    #[test]
    fn modules_and_glue_that_disagree_are_left_alone() {
        // An import the glue never names.
        assert!(rename(&module(), &GLUE.replace("__wbindgen_memory", "__wbindgen_other")).is_none());
        // Short names the glue already has.
        assert!(rename(&module(), &format!("{GLUE}let __i0 = 1;\n")).is_none());
        // The module's name missing from the glue.
        assert!(rename(&module(), &GLUE.replace("./x_bg.js", "./y_bg.js")).is_none());
        // Not a module, or one cut short.
        assert!(rename(b"not wasm", GLUE).is_none());
        let mut cut = module();
        cut.truncate(cut.len() - 3);
        assert!(rename(&cut, GLUE).is_none());
    }

    #[test]
    fn numbers_round_trip() {
        for n in [0, 1, 127, 128, 300, 16_384, u32::MAX] {
            let mut out = Vec::new();
            put_leb(&mut out, n);
            assert_eq!(leb(&out, 0), Some((n, out.len())));
        }
        assert_eq!(base36(0), "0");
        assert_eq!(base36(153), "49");
    }
}
