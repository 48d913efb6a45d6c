//! The publishable-key check: the one function the edge and the control plane both call.
//!
//! Order matters and is part of the contract:
//! 1. the key's shape and checksum (no storage needed; an invented key ends here);
//! 2. the stored record must exist and carry this key's digest (constant-time compare);
//! 3. a revoked key is `REVOKED`;
//! 4. a browser `Origin` outside the allowed list is `ORIGIN_NOT_ALLOWED`;
//! 5. the module and functionality are put in canonical form
//!    ([`crate::action::canonical_action`]: lowercase, escapes decoded once); a label that does
//!    not canonicalise is `INVALID` (fail closed: a name that cannot be on a blacklist must not
//!    slip past one);
//! 6. a blacklisted (module, functionality), compared in canonical form, is `BLACKLISTED`;
//! 7. otherwise `VALID`, naming the workspace.

use crate::action::canonical_action;
use crate::key::{self, KeyKind};
use crate::record::{CompiledRecord, KeyState};
use crate::verdict::{Status, Verdict};

/// One call to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckRequest<'a> {
    /// The publishable key as sent.
    pub key: &'a str,
    /// The module being called.
    pub module: &'a str,
    /// The functionality being called.
    pub functionality: &'a str,
    /// The browser's `Origin` header, if any.
    pub origin: Option<&'a str>,
}

/// Decides a check. `record` is what storage holds under the key's digest (`None`: nothing).
pub fn check(req: &CheckRequest<'_>, record: Option<&CompiledRecord>) -> Verdict {
    let Ok(parsed) = key::parse_as(req.key, KeyKind::Publishable) else {
        return Verdict::invalid();
    };
    let Some(compiled) = record else {
        return Verdict::invalid();
    };
    let stored = &compiled.record;
    if parsed.digest() != stored.key_digest {
        return Verdict::invalid();
    }
    let status = if stored.state == KeyState::Revoked {
        Status::Revoked
    } else if !compiled.origins.allows(req.origin) {
        Status::OriginNotAllowed
    } else {
        match canonical_action(req.module, req.functionality) {
            Err(_) => Status::Invalid,
            Ok(a) if compiled.blacklist.blocks(&a.module, &a.functionality) => Status::Blacklisted,
            Ok(_) => Status::Valid,
        }
    };
    Verdict {
        status,
        workspace_id: Some(stored.workspace_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blacklist::Rule;
    use crate::key::{Environment, SecretKey};
    use crate::record::EdgeRecord;

    fn record_for(key: &SecretKey, state: KeyState) -> CompiledRecord {
        EdgeRecord {
            blacklist: vec![
                Rule::new("billing", "refund").unwrap(),
                Rule::new("admin", "*").unwrap(),
            ],
            allowed_origins: vec!["https://app.example.com".into()],
            ..EdgeRecord::new(key.digest(), "w1".into(), state, 1)
        }
        .compile()
    }

    fn req<'a>(
        key: &'a str,
        module: &'a str,
        func: &'a str,
        origin: Option<&'a str>,
    ) -> CheckRequest<'a> {
        CheckRequest {
            key,
            module,
            functionality: func,
            origin,
        }
    }

    #[test]
    fn each_step_decides_as_documented() {
        let key = SecretKey::generate(KeyKind::Publishable, Environment::Live);
        let k = key.expose();
        let active = record_for(&key, KeyState::Active);
        let app = Some("https://app.example.com");
        let status = |r: CheckRequest<'_>, rec: Option<&CompiledRecord>| check(&r, rec).status;
        assert_eq!(
            status(req(k, "billing", "charge", app), Some(&active)),
            Status::Valid
        );
        assert_eq!(
            check(&req(k, "billing", "charge", app), Some(&active))
                .workspace_id
                .as_deref(),
            Some("w1")
        );
        assert_eq!(
            status(req(k, "billing", "charge", None), Some(&active)),
            Status::Valid
        );
        assert_eq!(
            status(req(k, "billing", "refund", app), Some(&active)),
            Status::Blacklisted
        );
        assert_eq!(
            status(req(k, "admin", "anything", app), Some(&active)),
            Status::Blacklisted
        );
        assert_eq!(
            status(
                req(k, "billing", "charge", Some("https://evil.com")),
                Some(&active)
            ),
            Status::OriginNotAllowed
        );
        assert_eq!(
            status(req(k, "billing ", "refund", app), Some(&active)),
            Status::Invalid
        );
        assert_eq!(
            status(req(k, "billing", "charge", app), None),
            Status::Invalid
        );
        let revoked = record_for(&key, KeyState::Revoked);
        assert_eq!(
            status(req(k, "billing", "charge", app), Some(&revoked)),
            Status::Revoked
        );
        let other = SecretKey::generate(KeyKind::Publishable, Environment::Live);
        assert_eq!(
            status(req(other.expose(), "billing", "charge", app), Some(&active)),
            Status::Invalid
        );
        let sdk = SecretKey::generate(KeyKind::Sdk, Environment::Live);
        let sdk_record = record_for(&sdk, KeyState::Active);
        assert_eq!(
            status(
                req(sdk.expose(), "billing", "charge", app),
                Some(&sdk_record)
            ),
            Status::Invalid
        );
        assert_eq!(
            status(
                req("pk_live_garbage", "billing", "charge", app),
                Some(&active)
            ),
            Status::Invalid
        );
    }
}

#[cfg(test)]
mod canonical_tests {
    use super::*;
    use crate::blacklist::Rule;
    use crate::key::{Environment, SecretKey};
    use crate::record::EdgeRecord;
    use proptest::prelude::*;

    /// One spelling of `canonical`: each byte as is, upper-cased, or percent-encoded; `junk`
    /// may append bytes that make it no label at all (never another label).
    fn spelling(canonical: &'static str) -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(0u8..4, canonical.len()),
            proptest::option::of(prop_oneof![
                Just("%2F".to_owned()),
                Just("/".to_owned()),
                Just("%00".to_owned()),
                Just(" ".to_owned()),
                Just("%".to_owned()),
                Just("%252F".to_owned()),
                Just("\u{212a}".to_owned()),
            ]),
        )
            .prop_map(move |(choices, junk)| {
                let mut s: String = canonical
                    .bytes()
                    .zip(choices)
                    .map(|(b, how)| match how {
                        0 => char::from(b).to_string(),
                        1 => char::from(b.to_ascii_uppercase()).to_string(),
                        2 => format!("%{b:02X}"),
                        _ => format!("%{:02x}", b.to_ascii_uppercase()),
                    })
                    .collect();
                if let Some(j) = junk {
                    s.push_str(&j);
                }
                s
            })
    }

    fn guarded() -> (SecretKey, CompiledRecord) {
        let key = SecretKey::generate(KeyKind::Publishable, Environment::Live);
        let record = EdgeRecord {
            // Saved before canonical forms existed: still blocks every spelling.
            blacklist: vec![
                Rule {
                    module: "Billing".into(),
                    functionality: "Refund".into(),
                },
                Rule::new("admin", "*").unwrap(),
            ],
            ..EdgeRecord::new(key.digest(), "w1".into(), KeyState::Active, 1)
        }
        .compile();
        (key, record)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn every_spelling_of_a_blacklisted_action_is_refused_or_blocked(
            module in spelling("billing"),
            functionality in spelling("refund"),
            whole in spelling("admin"),
            anything in "\\PC{0,12}",
        ) {
            let (key, record) = guarded();
            for (m, f) in [(&module, &functionality), (&whole, &anything)] {
                let verdict = check(
                    &CheckRequest { key: key.expose(), module: m, functionality: f, origin: None },
                    Some(&record),
                );
                prop_assert!(
                    matches!(verdict.status, Status::Blacklisted | Status::Invalid),
                    "{m}/{f} was {:?}", verdict.status
                );
            }
            if crate::action::canonical_label(&module).as_deref() == Ok("billing")
                && crate::action::canonical_label(&functionality).as_deref() == Ok("refund")
            {
                let verdict = check(
                    &CheckRequest { key: key.expose(), module: &module, functionality: &functionality, origin: None },
                    Some(&record),
                );
                prop_assert_eq!(verdict.status, Status::Blacklisted);
            }
        }
    }

    #[test]
    fn other_actions_stay_valid_in_any_case() {
        let (key, record) = guarded();
        for (m, f) in [
            ("Billing", "Charge"),
            ("bill%69ng", "charge"),
            ("orders", "refund"),
        ] {
            let v = check(
                &CheckRequest {
                    key: key.expose(),
                    module: m,
                    functionality: f,
                    origin: None,
                },
                Some(&record),
            );
            assert_eq!(v.status, Status::Valid, "{m}/{f}");
        }
    }
}
