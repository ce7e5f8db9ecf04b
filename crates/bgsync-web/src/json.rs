//! JSON text on a round's hot paths. A queue's records come into Rust as
//! one string (`JSON.stringify` of IndexedDB's `getAll`), a batch goes out
//! as one string, and its answer comes back as one: a crossing of the wasm
//! boundary per field made a thousand entries about 25,000 crossings, most
//! of a round's time outside the network. The browser's JSON does the
//! JavaScript side; this is the Rust side, small on purpose (no serde in the
//! module users download): a reader of JSON values and a string writer.

/// A JSON value. Objects keep their fields in order (records have a few).
#[cfg(test)]
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

// The tree of values is read by the tests (which check the reader's
// strings and numbers through it); the modules read known shapes with
// `Reader`.
#[cfg(test)]
impl Value {
    /// The field `name` of an object.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }
}

/// How deep arrays and objects may nest (an answer from a server is not
/// trusted to be shallow).
const MAX_DEPTH: usize = 64;

/// Reads one JSON value filling all of `text` (whitespace around it
/// allowed); `None` if `text` is not that.
#[cfg(test)]
pub fn parse(text: &str) -> Option<Value> {
    let mut reader = Reader { text, at: 0 };
    let value = reader.value(0)?;
    reader.space();
    (reader.at == text.len()).then_some(value)
}

/// Reads a JSON text of a known shape straight into Rust values (no
/// tree of values: no allocation but the strings kept): [`Reader::array`],
/// [`Reader::object`] with each field's name, typed reads that skip a value
/// of another type, [`Reader::skip`] for the rest, then [`Reader::end`].
/// Every method returns `None` on text that is not JSON.
pub struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Reader { text, at: 0 }
    }

    /// Only whitespace is left.
    pub fn end(&mut self) -> Option<()> {
        self.space();
        (self.at == self.text.len()).then_some(())
    }

    /// The first byte of the next value (`"`, `[`, `{`, `n`, a digit…).
    fn kind(&mut self) -> Option<u8> {
        self.space();
        self.peek()
    }

    /// An array, each item read by `item`.
    pub fn array(&mut self, item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.kind()? != b'[' {
            return None;
        }
        self.items(b']', item)
    }

    /// An object, each field's value read by `field`, given the field's
    /// name.
    pub fn object(&mut self, mut field: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        if self.kind()? != b'{' {
            return None;
        }
        self.items(b'}', |reader| {
            if reader.kind()? != b'"' {
                return None;
            }
            let name = reader.name()?;
            reader.space();
            reader.eat(":")?;
            field(reader, &name)
        })
    }

    /// A field's name, borrowed from the text unless it has escapes.
    fn name(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        let text = self.text;
        let rest = &text.as_bytes()[self.at + 1..];
        match rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20) {
            Some(run) if rest[run] == b'"' => {
                let name = text.get(self.at + 1..self.at + 1 + run)?;
                self.at += run + 2;
                Some(std::borrow::Cow::Borrowed(name))
            }
            _ => self.string().map(std::borrow::Cow::Owned),
        }
    }

    /// A string; `Some(None)` (the value skipped) if the value is another
    /// type.
    pub fn maybe_string(&mut self) -> Option<Option<String>> {
        if self.kind()? == b'"' {
            return self.string().map(Some);
        }
        self.skip().map(|_| None)
    }

    /// A number; `Some(None)` (the value skipped) if the value is another
    /// type.
    pub fn maybe_number(&mut self) -> Option<Option<f64>> {
        if matches!(self.kind()?, b'-' | b'0'..=b'9') {
            return self.number().map(Some);
        }
        self.skip().map(|_| None)
    }

    /// Whether the next value is an array (else the caller skips it or
    /// reads it as something else).
    pub fn at_array(&mut self) -> Option<bool> {
        Some(self.kind()? == b'[')
    }

    /// Whether the next value is an object.
    pub fn at_object(&mut self) -> Option<bool> {
        Some(self.kind()? == b'{')
    }

    /// Passes over one value of any type.
    pub fn skip(&mut self) -> Option<()> {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> Option<()> {
        match self.kind()? {
            b'"' => {
                // Up to the closing quote, escapes stepped over.
                self.at += 1;
                loop {
                    let rest = &self.text.as_bytes()[self.at..];
                    let run = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
                    self.at += run;
                    match self.peek()? {
                        b'"' => {
                            self.at += 1;
                            return Some(());
                        }
                        b'\\' => {
                            self.at += 1;
                            match self.peek()? {
                                b'u' => {
                                    self.at += 1;
                                    self.hex4()?;
                                }
                                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                                _ => return None,
                            }
                        }
                        _ => return None,
                    }
                }
            }
            b'[' if depth < MAX_DEPTH => self.items(b']', |reader| reader.skip_nested(depth + 1)),
            b'{' if depth < MAX_DEPTH => self.items(b'}', |reader| {
                if reader.kind()? != b'"' {
                    return None;
                }
                reader.skip_nested(depth + 1)?;
                reader.space();
                reader.eat(":")?;
                reader.skip_nested(depth + 1)
            }),
            b'n' => self.eat("null"),
            b't' => self.eat("true"),
            b'f' => self.eat("false"),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            _ => None,
        }
    }
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> Option<()> {
        self.text.get(self.at..)?.starts_with(literal).then(|| self.at += literal.len())
    }

    #[cfg(test)]
    fn value(&mut self, depth: usize) -> Option<Value> {
        self.space();
        match self.peek()? {
            b'n' => self.eat("null").map(|_| Value::Null),
            b't' => self.eat("true").map(|_| Value::Bool(true)),
            b'f' => self.eat("false").map(|_| Value::Bool(false)),
            b'"' => self.string().map(Value::String),
            b'[' if depth < MAX_DEPTH => {
                let mut items = Vec::new();
                self.items(b']', |reader| {
                    items.push(reader.value(depth + 1)?);
                    Some(())
                })?;
                Some(Value::Array(items))
            }
            b'{' if depth < MAX_DEPTH => {
                let mut fields = Vec::new();
                self.items(b'}', |reader| {
                    reader.space();
                    if reader.peek()? != b'"' {
                        return None;
                    }
                    let name = reader.string()?;
                    reader.space();
                    reader.eat(":")?;
                    fields.push((name, reader.value(depth + 1)?));
                    Some(())
                })?;
                Some(Value::Object(fields))
            }
            b'-' | b'0'..=b'9' => self.number().map(Value::Number),
            _ => None,
        }
    }

    /// The items of an array or object, the reader on its opening bracket:
    /// `item` reads each; they are separated by commas, up to `close`.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.at += 1;
        self.space();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.space();
            match self.peek()? {
                b',' => self.at += 1,
                b if b == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string, the reader on its opening quote.
    fn string(&mut self) -> Option<String> {
        self.at += 1;
        let rest = &self.text.as_bytes()[self.at..];
        let first = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[first] == b'"' {
            // No escapes (most strings): one copy of the exact size.
            let out = self.text.get(self.at..self.at + first)?.to_owned();
            self.at += first + 1;
            return Some(out);
        }
        let mut out = String::with_capacity(first + 16);
        loop {
            // Up to the next quote, backslash or control character: the
            // text between is copied as it is (it is UTF-8 already, and
            // those are ASCII, never inside a multi-byte character).
            let rest = &self.text.as_bytes()[self.at..];
            let run = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
            out.push_str(self.text.get(self.at..self.at + run)?);
            self.at += run;
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.at += 1;
                    let escaped = self.peek()?;
                    self.at += 1;
                    out.push(match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode()?,
                        _ => return None,
                    });
                }
                // A raw control character is not JSON.
                _ => return None,
            }
        }
    }

    /// The character of a `\u` escape (the reader after the `u`); a
    /// surrogate pair is one character, a lone surrogate (which
    /// JavaScript strings can hold) becomes U+FFFD, as the browser's own
    /// conversion to UTF-8 does.
    fn unicode(&mut self) -> Option<char> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) && self.text.get(self.at..).is_some_and(|rest| rest.starts_with("\\u")) {
            let save = self.at;
            self.at += 2;
            let second = self.hex4()?;
            if (0xDC00..0xE000).contains(&second) {
                return char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00));
            }
            self.at = save;
        }
        Some(char::from_u32(first).unwrap_or('\u{FFFD}'))
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.at..self.at + 4)?;
        let mut n = 0;
        for b in digits.bytes() {
            n = n * 16 + (b as char).to_digit(16)?;
        }
        self.at += 4;
        Some(n)
    }

    /// A number: exact for integers below 2^53 and for decimals with at
    /// most 15 significant digits and 22 places (every number bgsync
    /// stores); the nearest double or next to it otherwise.
    fn number(&mut self) -> Option<f64> {
        let negative = self.eat("-").is_some();
        let (mut mantissa, mut scale, mut digits) = (0u64, 0i32, 0usize);
        let mut any = false;
        let mut fraction = false;
        while let Some(b) = self.peek() {
            match b {
                b'0'..=b'9' => {
                    any = true;
                    if digits < 19 {
                        mantissa = mantissa * 10 + u64::from(b - b'0');
                        if mantissa > 0 {
                            digits += 1;
                        }
                        if fraction {
                            scale -= 1;
                        }
                    } else if !fraction {
                        scale += 1;
                    }
                }
                b'.' if !fraction => fraction = true,
                _ => break,
            }
            self.at += 1;
        }
        if !any {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            let sign = if self.eat("-").is_some() {
                -1
            } else {
                let _ = self.eat("+");
                1
            };
            let mut exponent = 0i32;
            let mut any = false;
            while let Some(b @ b'0'..=b'9') = self.peek() {
                exponent = exponent.saturating_mul(10).saturating_add(i32::from(b - b'0'));
                any = true;
                self.at += 1;
            }
            if !any {
                return None;
            }
            scale = scale.saturating_add(sign * exponent);
        }
        let m = mantissa as f64;
        let value = if scale < 0 {
            if scale >= -22 {
                m / 10f64.powi(-scale)
            } else {
                m / 10f64.powi(22) / 10f64.powi(-scale - 22)
            }
        } else {
            m * 10f64.powi(scale)
        };
        Some(if negative { -value } else { value })
    }
}

/// Appends `text` to `out` as a JSON string, quotes included.
pub fn write_str(out: &mut String, text: &str) {
    // (`get`, not indexing: the cuts are at ASCII bytes, so always at char
    // boundaries, and indexing would bring std's char-boundary panic, with
    // its `char` Debug, into every module.)
    out.push('"');
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(text.get(start..i).unwrap_or_default());
        if escaped.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(text.get(start..).unwrap_or_default());
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn reads_what_json_stringify_writes() {
        let text = r#" [{"key":"k1","headers":[["A","b"]],"body":"{\"t\":\"x\\\\y\"}","at":1733083200123,
            "n":null,"ok":true,"no":false,"f":-12.5e1,"e":{}} , [] ] "#;
        let value = parse(text).unwrap();
        let Value::Array(items) = &value else { panic!("{value:?}") };
        assert_eq!(items.len(), 2);
        let record = &items[0];
        assert_eq!(record.get("key"), Some(&s("k1")));
        assert_eq!(record.get("headers"), Some(&Value::Array(vec![Value::Array(vec![s("A"), s("b")])])));
        assert_eq!(record.get("body"), Some(&s(r#"{"t":"x\\y"}"#)));
        assert_eq!(record.get("at").and_then(Value::as_f64), Some(1_733_083_200_123.0));
        assert_eq!(record.get("n"), Some(&Value::Null));
        assert_eq!(record.get("ok"), Some(&Value::Bool(true)));
        assert_eq!(record.get("no"), Some(&Value::Bool(false)));
        assert_eq!(record.get("f").and_then(Value::as_f64), Some(-125.0));
        assert_eq!(record.get("e"), Some(&Value::Object(Vec::new())));
        assert_eq!(items[1], Value::Array(Vec::new()));
    }

    #[test]
    fn numbers_are_exact_where_bgsync_stores_them() {
        for (text, expected) in [
            ("0", 0.0),
            ("-0.5", -0.5),
            ("9007199254740991", 9_007_199_254_740_991.0),
            ("1733083200123.456", 1_733_083_200_123.456),
            ("0.1", 0.1),
            ("123456.789012", 123_456.789_012),
            ("1e3", 1000.0),
            ("2.5E-3", 0.0025),
        ] {
            assert_eq!(parse(text), Some(Value::Number(expected)), "{text}");
        }
        // Beyond that, within a rounding or two.
        for (text, expected) in [("12345678901234567890", 1.234_567_890_123_456_8e19), ("1.5e-30", 1.5e-30)] {
            let read = parse(text).and_then(|v| v.as_f64()).unwrap();
            assert!(((read - expected) / expected).abs() < 1e-15, "{text}: {read}");
        }
        for bad in ["-", "1e", "1.2.3", "01x", ".5", "+1"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn strings_with_every_escape_and_any_character() {
        let text = r#""q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 lone \ud800 end é😀""#;
        assert_eq!(parse(text), Some(s("q\" b\\ s/ \u{8}\u{c}\n\r\t é 😀 lone \u{FFFD} end é😀")));
        for bad in ["\"open", "\"bad \\x\"", "\"\\u12\"", "\"raw \n line\""] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn malformed_or_too_deep_is_none_not_a_panic() {
        for bad in ["", "[", "[1,]", "{\"a\"}", "{\"a\":1,}", "{a:1}", "nul", "[1] x", "\u{0}", "[\"é"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(parse(&deep), None);
        let fine = "[".repeat(60) + &"]".repeat(60);
        assert!(parse(&fine).is_some());
    }

    /// A record's key, time and tags.
    type Record = (Option<String>, Option<f64>, Vec<String>);

    /// A record read field by field: the fields wanted, typed, the others
    /// and wrong-typed ones skipped.
    fn read_records(text: &str) -> Option<Vec<Record>> {
        let mut reader = Reader::new(text);
        let mut records = Vec::new();
        reader.array(|reader| {
            let (mut key, mut at, mut tags) = (None, None, Vec::new());
            reader.object(|reader, name| {
                match name {
                    "key" => key = reader.maybe_string()?,
                    "at" => at = reader.maybe_number()?,
                    "tags" if reader.at_array()? => reader.array(|reader| {
                        tags.extend(reader.maybe_string()?);
                        Some(())
                    })?,
                    _ => reader.skip()?,
                }
                Some(())
            })?;
            records.push((key, at, tags));
            Some(())
        })?;
        reader.end()?;
        Some(records)
    }

    #[test]
    fn a_reader_takes_known_fields_and_skips_the_rest() {
        let text = r#" [ {"skip":{"a":[1,{"b":"\"}"},null,true,"x\u00e9\ud83d\ude00"]},"key":"k\"1","at":12.5,
            "tags":["a",2,"b",["c"]],"e\u0073c":"name with an escape"},
            {"key":7,"at":"late","tags":"none"}, {} ] "#;
        let records = read_records(text).unwrap();
        assert_eq!(
            records,
            [
                (Some("k\"1".into()), Some(12.5), vec!["a".into(), "b".into()]),
                (None, None, vec![]),
                (None, None, vec![]),
            ]
        );
        for bad in [
            "",
            "{}",
            "[{]",
            "[{\"key\":}]",
            "[{\"key\" \"k\"}]",
            "[{\"skip\":\"\\x\"}]",
            "[{\"skip\":[1,]}]",
            "[{\"skip\":\"open}]",
            "[{\"key\":\"k\"},]",
            "[] x",
        ] {
            assert_eq!(read_records(bad), None, "{bad:?}");
        }
        let deep = format!("[{{\"skip\":{}{}}}]", "[".repeat(100), "]".repeat(100));
        assert_eq!(read_records(&deep), None, "too deep");
    }

    #[test]
    fn written_strings_read_back_the_same() {
        for text in ["", "plain", "q\"b\\s", "line\nbreak\r\ttab", "\u{0}\u{1f}\u{7f}", "é😀 {\"json\": [1]}"] {
            let mut out = String::new();
            write_str(&mut out, text);
            assert!(!out[1..out.len() - 1].bytes().any(|b| b < 0x20), "{out:?}");
            assert_eq!(parse(&out), Some(s(text)), "{out}");
        }
    }
}
