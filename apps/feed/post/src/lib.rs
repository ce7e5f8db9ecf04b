//! A post of the feed: a title and a location, identified by a UUID the
//! browser makes when the user submits it.
//!
//! The page and the server both parse user input with [`NewPost::parse`], so
//! the rules can never drift apart: what the page accepts into its queue is
//! exactly what the server will store.

use std::fmt;

/// The most characters (not bytes) a title or a location may have.
pub const MAX_FIELD_CHARS: usize = 200;

/// A post that passed validation: trimmed, non-empty, bounded fields and a
/// canonical (lowercase, hyphenated) UUID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPost {
    pub id: String,
    pub title: String,
    pub location: String,
}

/// One reason the input was refused, tied to the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl NewPost {
    /// Validates raw input, reporting every invalid field at once.
    pub fn parse(id: &str, title: &str, location: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let id = parse_uuid(id).map_err(|message| errors.push(FieldError { field: "id", message }));
        let title = parse_text("title", "Title", title).map_err(|e| errors.push(e));
        let location = parse_text("location", "Location", location).map_err(|e| errors.push(e));
        match (id, title, location) {
            (Ok(id), Ok(title), Ok(location)) => Ok(Self { id, title, location }),
            _ => Err(errors),
        }
    }
}

fn parse_text(field: &'static str, label: &str, raw: &str) -> Result<String, FieldError> {
    let text = raw.trim();
    let message = if text.is_empty() {
        format!("{label} is required.")
    } else if text.chars().count() > MAX_FIELD_CHARS {
        format!("{label} must be at most {MAX_FIELD_CHARS} characters.")
    } else if text.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
        format!("{label} must not contain control characters such as line breaks.")
    } else if let Some(c) = text.chars().find(|c| is_bidi_control(*c)) {
        format!(
            "{label} must not contain the bidirectional control character U+{:04X}: it can make the text read \
             differently from what it holds.",
            c as u32
        )
    } else if text.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        format!("{label} must contain visible characters, not only invisible ones.")
    } else {
        return Ok(text.to_owned());
    };
    Err(FieldError { field, message })
}

/// The characters that override or embed a text direction (Unicode's
/// bidirectional formatting characters): they can make a title display as
/// something other than what it holds.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that take no space on screen (zero-width spaces and joiners,
/// the word joiner, the soft hyphen, the byte-order mark, and the like).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{180E}' | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}'
    )
}

/// Accepts the 8-4-4-4-12 hexadecimal form in either case and returns it in
/// lowercase, so the same post id can not be stored twice by spelling.
pub fn parse_uuid(raw: &str) -> Result<String, String> {
    let groups: Vec<&str> = raw.split('-').collect();
    let shape_ok = groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if shape_ok {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err("id must be a UUID such as 3f1c2a9e-0d7b-4e55-9a51-2f3c4d5e6f70.".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3F1C2A9E-0D7B-4E55-9A51-2F3C4D5E6F70";

    #[test]
    fn trims_and_normalises() {
        let p = NewPost::parse(ID, "  Sunset ", "\tBerlin\n").unwrap();
        assert_eq!(p.title, "Sunset");
        assert_eq!(p.location, "Berlin");
        assert_eq!(p.id, ID.to_ascii_lowercase());
    }

    #[test]
    fn reports_every_bad_field() {
        let errors = NewPost::parse("2024-01-01T00:00:00.000Z", "   ", "").unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["id", "title", "location"]);
        assert_eq!(errors[1].message, "Title is required.");
    }

    #[test]
    fn bounds_count_characters_not_bytes() {
        let ok = "é".repeat(MAX_FIELD_CHARS);
        assert!(NewPost::parse(ID, &ok, "x").is_ok());
        let long = "é".repeat(MAX_FIELD_CHARS + 1);
        let errors = NewPost::parse(ID, &long, "x").unwrap_err();
        assert_eq!(errors[0].message, "Title must be at most 200 characters.");
    }

    #[test]
    fn refuses_control_characters() {
        let errors = NewPost::parse(ID, "a\nb", "x").unwrap_err();
        assert_eq!(errors[0].field, "title");
    }

    #[test]
    fn refuses_invisible_only_text_line_separators_and_bidi_controls() {
        let errors = NewPost::parse(ID, "\u{200B}\u{200B}", "x").unwrap_err();
        assert_eq!(errors[0].message, "Title must contain visible characters, not only invisible ones.");
        let errors = NewPost::parse(ID, "abc\u{202E}fed", "x").unwrap_err();
        assert!(errors[0].message.contains("U+202E"), "{}", errors[0].message);
        assert!(NewPost::parse(ID, "a\u{2028}b", "x").is_err());
        assert!(NewPost::parse(ID, "x", "\u{2066}Paris").is_err());
        // A joiner inside visible text (emoji sequences) is fine.
        assert!(NewPost::parse(ID, "👩\u{200D}💻 at work", "x").is_ok());
    }

    #[test]
    fn uuid_shape_is_strict() {
        for bad in ["", "not-a-uuid", "3f1c2a9e0d7b4e559a512f3c4d5e6f70", "3f1c2a9e-0d7b-4e55-9a51-2f3c4d5e6f7g"] {
            assert!(parse_uuid(bad).is_err(), "{bad}");
        }
    }
}
