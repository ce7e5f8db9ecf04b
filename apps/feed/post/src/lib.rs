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
    } else if text.chars().any(char::is_control) {
        format!("{label} must not contain control characters such as line breaks.")
    } else {
        return Ok(text.to_owned());
    };
    Err(FieldError { field, message })
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
    fn uuid_shape_is_strict() {
        for bad in ["", "not-a-uuid", "3f1c2a9e0d7b4e559a512f3c4d5e6f70", "3f1c2a9e-0d7b-4e55-9a51-2f3c4d5e6f7g"] {
            assert!(parse_uuid(bad).is_err(), "{bad}");
        }
    }
}
