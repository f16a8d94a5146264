//! Resource normalisation: `Resource::parse` on any decoded value.
//!
//! Invariants besides "never panics": an accepted resource is the input with
//! at most one trailing `/.default` removed (never otherwise rewritten, since
//! it is echoed and becomes `aud`), is non-empty, within the length cap, free
//! of whitespace and control characters, and is an absolute URI or a GUID;
//! every refusal reason matches the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use miemu::token::{MAX_RESOURCE_LEN, Resource, ResourceError};

fuzz_target!(|data: &[u8]| {
    // The protocol layer refuses values that do not decode to UTF-8.
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let stripped = raw.strip_suffix("/.default").unwrap_or(raw);
    match Resource::parse(raw) {
        Ok(resource) => {
            let v = resource.as_str();
            assert_eq!(v, stripped);
            assert_eq!(resource.to_string(), v);
            assert!(!v.is_empty() && v.len() <= MAX_RESOURCE_LEN);
            assert!(!v.chars().any(|c| c.is_control() || c.is_whitespace()));
            let uri_scheme = v
                .split_once(':')
                .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
            let guid = v.len() == 36 && v.parse::<uuid::Uuid>().is_ok();
            assert!(uri_scheme || guid, "{v:?} is neither a URI nor a GUID");
        }
        Err(ResourceError::Empty) => assert!(stripped.is_empty()),
        Err(ResourceError::TooLong) => assert!(stripped.len() > MAX_RESOURCE_LEN),
        Err(ResourceError::Malformed(shown)) => {
            assert!(!stripped.is_empty() && stripped.len() <= MAX_RESOURCE_LEN);
            assert!(shown.chars().count() <= 80);
            assert!(stripped.starts_with(&shown));
        }
    }
});
