//! Query-string and selector parsing, as the token handler runs it:
//! `Params::parse` on the raw query, then `single` on every name the handler
//! reads, then the `resource` value through `Resource::parse`.
//!
//! Besides "never panics", the decoded pairs are checked against an
//! independent decoder (`form_urlencoded`, the `url` crate's): where miemu
//! accepts a query, both must agree on every looked-up value and on which
//! names are repeated; where miemu refuses bytes as not UTF-8, the lossy
//! decoder must have had to substitute something.

#![no_main]

use libfuzzer_sys::fuzz_target;
use miemu::protocol::query::{MAX_QUERY_LEN, Params, QueryError};
use miemu::token::Resource;

/// Every parameter name `protocol::app_service` looks up.
const NAMES: [&str; 7] = [
    "api-version",
    "resource",
    "client_id",
    "object_id",
    "principal_id",
    "mi_res_id",
    "msi_res_id",
];

fuzz_target!(|data: &[u8]| {
    // hyper hands the handler the query as `&str`; other bytes never reach it.
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let reference: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    match Params::parse(Some(raw)) {
        Err(QueryError::TooLong) => assert!(raw.len() > MAX_QUERY_LEN),
        Err(QueryError::NotUtf8(_)) => {
            assert!(raw.len() <= MAX_QUERY_LEN);
            assert!(
                reference
                    .iter()
                    .any(|(n, v)| n.contains('\u{FFFD}') || v.contains('\u{FFFD}')),
                "refused as not UTF-8, but the reference decoder needed no substitution"
            );
        }
        Err(e @ QueryError::Repeated(_)) => panic!("parse itself reported {e:?}"),
        Ok(params) => {
            assert!(raw.len() <= MAX_QUERY_LEN);
            for name in NAMES {
                let mut expected = reference
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str());
                let first = expected.next();
                let repeated = expected.next().is_some();
                match params.single(name) {
                    Ok(found) => {
                        assert!(!repeated, "{name} is repeated but single() accepted it");
                        assert_eq!(found, first, "{name}");
                        if let (Some(value), "resource") = (found, name) {
                            let _ = Resource::parse(value);
                        }
                    }
                    Err(QueryError::Repeated(n)) => {
                        assert_eq!(n, name);
                        assert!(repeated, "{name} is not repeated but single() refused it");
                    }
                    Err(e) => panic!("single({name}) returned {e:?}"),
                }
            }
        }
    }
});
