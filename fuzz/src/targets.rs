//! The targets: one per parser of untrusted bytes, each with seeds, a dictionary and oracles.

use keygate_edge::check::parse_check_body;
use keygate_edge::gateway::parse_route;
use keygate_edge::sync::{authenticate, parse_batch, SyncHeaders};
use keygate_shared::action::{canonical_action, canonical_label, is_canonical_label};
use keygate_shared::blacklist::{BlacklistPolicy, Rule};
use keygate_shared::check::{check, CheckRequest};
use keygate_shared::gateway::{self, ForwardedRequest, GatewaySecret, SealedGatewaySecret};
use keygate_shared::key::{self, Environment, KeyKind, SecretKey};
use keygate_shared::origin;
use keygate_shared::record::{EdgeRecord, KeyState, SyncBatch};
use keygate_shared::signing::{self, Purpose};

use crate::Target;

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "key",
        seeds: key_seeds,
        dictionary: &["pk_live_", "sk_test_", "_", "0", "z", "Z", "\u{212a}", "é"],
        run: key,
    },
    Target {
        name: "label",
        seeds: label_seeds,
        dictionary: LABEL_TOKENS,
        run: label,
    },
    Target {
        name: "rest",
        seeds: rest_seeds,
        dictionary: REST_TOKENS,
        run: rest,
    },
    Target {
        name: "origin",
        seeds: origin_seeds,
        dictionary: &[
            "https://",
            "http://",
            "*.",
            ":443",
            ":0",
            ":65536",
            "@",
            "/",
            "?",
            "#",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "127.0.0.1",
            "0x7f",
            "0177",
            "2130706433",
            "localhost",
            ".",
            "%2e",
            "-",
            "169.254.169.254",
            "100.64.0.1",
        ],
        run: origin_url,
    },
    Target {
        name: "gateway-signature",
        seeds: signature_seeds,
        dictionary: &[
            "t=",
            "v1=",
            ",",
            ":",
            "18446744073709551615",
            "18446744073709551616",
            "0",
            "99999999999999999999",
            "=",
            " ",
            "v2=",
            "kid",
        ],
        run: gateway_signature,
    },
    Target {
        name: "sync",
        seeds: sync_seeds,
        dictionary: &[
            "\n",
            "{\"records\":[",
            "]}",
            "\"version\":",
            "18446744073709551615",
            "null",
            "\"state\":\"revoked\"",
            "\"format\":2",
            "\"keyDigest\":\"",
            "\"gatewaySecrets\":[",
            "\"forwardCookies\":true",
            "1e400",
            "-1",
            "\\u0000",
            "\"",
        ],
        run: sync,
    },
    Target {
        name: "check-body",
        seeds: check_body_seeds,
        dictionary: &[
            "{",
            "}",
            "\"key\":",
            "\"module\":",
            "\"functionality\":",
            "null",
            "[]",
            "1",
            "\"",
            ",",
            "\\u0000",
            "%2F",
            "Billing",
            "\\ud800",
        ],
        run: check_body,
    },
    Target {
        name: "record",
        seeds: record_seeds,
        dictionary: &[
            "\"blacklist\":[{\"module\":\"",
            "\"functionality\":\"*\"",
            "\"allowedOrigins\":[",
            "\"originUrl\":\"",
            "\"gatewaySecrets\":[{\"kid\":\"k\",\"sealed\":\"",
            "\"notAfter\":",
            "18446744073709551615",
            "\"format\":0",
            "%2F",
            "Billing",
        ],
        run: record,
    },
    Target {
        name: "sealed-secret",
        seeds: sealed_seeds,
        dictionary: &["\n", "00", "ff", "zz", "-", "_"],
        run: sealed_secret,
    },
];

const LABEL_TOKENS: &[&str] = &[
    "%2F", "%2f", "%5C", "%25", "%2e", "%2E", "..", ".", "%", "%C0%AE", "\u{212a}", "İ", "*", "/",
    "\\", "%00", "%0a", " ", "B", "%42",
];

const REST_TOKENS: &[&str] = &[
    "%2F", "%2f", "%5C", "%5c", "%2e", "%2E", "%252e", "%252F", "..", ".", "/", "\\", ";", "%00",
    "%0a", "%7f", "%", "%zz", "//", "..;", "%c0%af",
];

const EDGE_SECRET: &str = "fuzz-edge-secret-fuzz-edge-secret-0123";

fn text(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

fn fields(input: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = input
        .splitn(n, |&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    out.resize(n, Vec::new());
    out
}

fn u64_of(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .fold(0u64, |acc, &b| acc.rotate_left(8) ^ u64::from(b))
}

fn key_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = [
        (KeyKind::Publishable, Environment::Live),
        (KeyKind::Sdk, Environment::Test),
        (KeyKind::WorkspaceToken, Environment::Live),
    ]
    .iter()
    .map(|&(k, e)| SecretKey::generate(k, e).expose().as_bytes().to_vec())
    .collect();
    seeds.push(b"pk_live_".to_vec());
    seeds.push(b"".to_vec());
    seeds
}

fn key(input: &[u8]) {
    let s = text(input);
    let parsed = key::parse(&s);
    let digest = key::digest(&s);
    assert_eq!(digest, key::digest(&s), "digests are deterministic");
    let mask = key::mask(&s);
    if let Ok(p) = parsed {
        assert!(mask.len() < s.len(), "a mask never shows the whole key");
        assert_eq!(p.digest(), digest);
        assert!(key::parse_as(&s, p.kind()).is_ok());
        // The checksum catches any single changed symbol in the body.
        let mut changed = s.clone().into_bytes();
        let i = changed.len() - 1;
        changed[i] = if changed[i] == b'a' { b'b' } else { b'a' };
        if let Ok(other) = String::from_utf8(changed) {
            assert!(key::parse(&other).is_err(), "changed checksum accepted");
        }
    }
}

/// Seeds that are text, as bytes.
fn text_seeds(texts: &[&str]) -> Vec<Vec<u8>> {
    texts.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn label_seeds() -> Vec<Vec<u8>> {
    text_seeds(&[
        "billing",
        "Billing",
        "bill%69ng",
        "refund-v2.x_1",
        "billing\nrefund",
        "admin\n*",
    ])
}

fn label(input: &[u8]) {
    let f = fields(input, 2);
    let (m, fun) = (text(&f[0]), text(&f[1]));
    for raw in [&m, &fun] {
        if let Ok(c) = canonical_label(raw) {
            assert!(is_canonical_label(&c), "{raw:?} -> {c:?} is not canonical");
            assert_eq!(canonical_label(&c).as_deref(), Ok(&*c), "not a fixed point");
            assert!(!c.contains(['/', '\\', '%']) && c != "." && c != "..");
            assert!(c.bytes().all(|b| !b.is_ascii_uppercase()));
        }
    }
    match (Rule::new(&m, &fun), canonical_action(&m, &fun)) {
        (Ok(rule), Ok(action)) => {
            assert_eq!(
                Rule::new(&rule.module, &rule.functionality),
                Ok(rule.clone())
            );
            let policy = BlacklistPolicy::compile(std::slice::from_ref(&rule));
            assert!(policy.blocks(&action.module, &action.functionality));
        }
        (Ok(rule), Err(_)) => assert!(rule.is_whole_module(), "a rule the check cannot name"),
        (Err(_), Ok(_)) => panic!("a checkable action that cannot be a rule"),
        (Err(_), Err(_)) => {}
    }
}

fn rest_seeds() -> Vec<Vec<u8>> {
    text_seeds(&[
        "v1/charges/42",
        "a/b.c/..d",
        "files/%20x",
        "a;b=1/c",
        "..%2F..%2Fadmin",
        "%2e%2e/x",
    ])
}

fn rest(input: &[u8]) {
    let s = text(input);
    let verdict = gateway::check_rest(&s);
    let path = format!("/x/billing/charge/{s}");
    let routed = parse_route(&path).is_ok();
    assert_eq!(
        verdict.is_ok(),
        routed,
        "the edge's route disagrees on {s:?}"
    );
    if verdict.is_ok() {
        let once = gateway::percent_decode_once(s.as_bytes());
        assert!(!once.contains(&b'\\'), "{s:?} hides a backslash");
        assert!(
            !once.iter().any(|&b| b < 0x20 || b == 0x7f),
            "{s:?} hides a control byte"
        );
        assert_eq!(
            once.iter().filter(|&&b| b == b'/').count(),
            s.matches('/').count(),
            "{s:?} hides a slash"
        );
        let twice = gateway::percent_decode_once(&once);
        for seg in twice.split(|&b| b == b'/') {
            let name = seg.split(|&b| b == b';').next().unwrap_or_default();
            assert!(name != b"." && name != b"..", "{s:?} hides a dot segment");
        }
    }
}

fn origin_seeds() -> Vec<Vec<u8>> {
    text_seeds(&[
        "https://api.example.com/v1",
        "http://127.0.0.1:9000",
        "https://*.example.org",
        "HTTPS://App.Example.com:443",
        "https://[::ffff:127.0.0.1]",
        "https://0x7f.1",
    ])
}

fn origin_url(input: &[u8]) {
    let s = text(input);
    if let Some(n) = origin::normalize(&s) {
        assert_eq!(
            origin::normalize(&n).as_deref(),
            Some(n.as_str()),
            "normalize is not idempotent"
        );
    }
    if let Ok(e) = origin::validate_entry(&s) {
        assert_eq!(origin::validate_entry(&e).as_deref(), Ok(e.as_str()));
        let policy = origin::OriginPolicy::compile([&e]);
        if !e.contains('*') {
            assert!(policy.allows(Some(&e)), "an entry does not allow itself");
        }
    }
    let _ = origin::OriginPolicy::compile([&s]).allows(Some(&s));
    if let Ok(u) = origin::validate_origin_url(&s) {
        assert_eq!(origin::validate_origin_url(&u).as_deref(), Ok(u.as_str()));
        let (base, path) =
            origin::split_origin_url(&u).expect("the edge accepts what control saves");
        assert_eq!(format!("{base}{path}"), u);
        if origin::check_forward_target(&u, false).is_ok() {
            assert!(u.starts_with("https://"), "{u} is not https");
            let host = base["https://".len()..]
                .split(':')
                .next()
                .unwrap_or_default();
            assert!(host.contains('.') && host != "localhost", "{u}");
            if let Ok(ip) = host.parse::<std::net::Ipv4Addr>() {
                assert!(
                    !ip.is_private() && !ip.is_loopback() && !ip.is_link_local(),
                    "{u}"
                );
                assert!(!ip.is_unspecified() && !ip.is_broadcast(), "{u}");
            }
        }
        assert!(origin::check_forward_target(&u, true).is_ok());
    }
    let _ = origin::check_forward_target(&s, false);
}

fn request(path: &str) -> ForwardedRequest<'_> {
    ForwardedRequest {
        method: "POST",
        path_and_query: path,
        workspace_id: "w1",
        module: "billing",
        functionality: "charge",
    }
}

fn signature_seeds() -> Vec<Vec<u8>> {
    let key = gateway::workspace_signing_key(EDGE_SECRET.as_bytes(), "w1");
    let s = GatewaySecret::new("k1", &key).expect("valid");
    vec![
        gateway::sign(&key, 1_800_000_000, &request("/v1")).into_bytes(),
        gateway::sign_with(&[s.clone(), s], 1_800_000_000, &request("/v1")).into_bytes(),
        b"t=18446744073709551615,v1=00".to_vec(),
    ]
}

fn gateway_signature(input: &[u8]) {
    let s = text(input);
    let key = gateway::workspace_signing_key(EDGE_SECRET.as_bytes(), "w1");
    let secret = GatewaySecret::new("k1", &key).expect("valid");
    let now = u64_of(input);
    for now in [now, 1_800_000_000, u64::MAX, 0] {
        let a = gateway::verify(&key, &s, &request("/v1"), now);
        let b = gateway::verify_any(std::slice::from_ref(&secret), &s, &request("/v1"), now);
        if b {
            assert!(a, "a kid-checked signature that the plain key rejects");
        }
        if a || b {
            let p = gateway::parse_signature_header(&s).expect("verified means parsed");
            assert!(gateway::is_fresh(p.timestamp, now));
        }
    }
    // What the edge signs (any path, any time) the origin verifies.
    let path = format!("/{}", s.replace(['\n', '\r'], ""));
    let ts = u64_of(input.get(8..).unwrap_or_default());
    let header = gateway::sign_with(std::slice::from_ref(&secret), ts, &request(&path));
    assert!(gateway::verify_any(
        std::slice::from_ref(&secret),
        &header,
        &request(&path),
        ts
    ));
    assert!(!gateway::verify_any(
        std::slice::from_ref(&secret),
        &header,
        &request(&format!("{path}x")),
        ts
    ));
}

const SYNC_NOW: u64 = 1_800_000_000;

fn sync_seeds() -> Vec<Vec<u8>> {
    let pk = SecretKey::generate(KeyKind::Publishable, Environment::Live);
    let record = EdgeRecord {
        blacklist: vec![Rule::new("billing", "*").expect("valid")],
        allowed_origins: vec!["https://a.example.com".into()],
        origin_url: Some("https://api.example.com".into()),
        ..EdgeRecord::new(pk.digest(), "w1".into(), KeyState::Active, 7)
    };
    let body = serde_json::to_string(&SyncBatch {
        records: vec![record],
    })
    .expect("serializable");
    let nonce = "fuzz-nonce-0001";
    let tag = signing::sign(
        EDGE_SECRET.as_bytes(),
        Purpose::Sync,
        SYNC_NOW,
        nonce,
        body.as_bytes(),
    );
    vec![
        format!("{SYNC_NOW}\n{nonce}\n{tag}\n{body}").into_bytes(),
        format!("{SYNC_NOW}\n{nonce}\n{tag}\n{{\"records\":[]}}").into_bytes(),
    ]
}

fn sync(input: &[u8]) {
    let f = fields(input, 4);
    let (ts, nonce, tag) = (text(&f[0]), text(&f[1]), text(&f[2]));
    let body = &f[3];
    let headers = SyncHeaders {
        timestamp: Some(&ts),
        nonce: Some(&nonce),
        signature: Some(&tag),
        key_id: None,
    };
    if authenticate(&[EDGE_SECRET.as_bytes()], headers, body, SYNC_NOW).is_ok() {
        let t = signing::parse_timestamp(&ts).expect("authenticated means parsed");
        let expected = signing::sign(EDGE_SECRET.as_bytes(), Purpose::Sync, t, &nonce, body);
        assert_eq!(
            expected,
            tag.to_ascii_lowercase(),
            "a forged push was accepted"
        );
    }
    if let Ok(batch) = parse_batch(body) {
        let again = serde_json::to_vec(&batch).expect("serializable");
        assert_eq!(
            parse_batch(&again).expect("re-parses"),
            batch,
            "batch round trip"
        );
        for r in batch.records {
            let _ = r.format_supported();
            let _ = r.compile();
        }
    }
}

fn check_body_seeds() -> Vec<Vec<u8>> {
    let pk = SecretKey::generate(KeyKind::Publishable, Environment::Live);
    vec![
        format!(
            r#"{{"key":"{}","module":"billing","functionality":"charge"}}"#,
            pk.expose()
        )
        .into_bytes(),
        br#"{"module":"Billing","functionality":"refund"}"#.to_vec(),
        br#"{"key":7}"#.to_vec(),
    ]
}

fn check_body(input: &[u8]) {
    match parse_check_body(input, || None) {
        Ok(c) => {
            let pk = SecretKey::generate(KeyKind::Publishable, Environment::Live);
            let record = EdgeRecord {
                blacklist: vec![Rule::new("billing", "refund").expect("valid")],
                ..EdgeRecord::new(pk.digest(), "w1".into(), KeyState::Active, 1)
            }
            .compile();
            let verdict = check(
                &CheckRequest {
                    key: pk.expose(),
                    module: &c.module,
                    functionality: &c.functionality,
                    origin: None,
                },
                Some(&record),
            );
            let blocked = canonical_action(&c.module, &c.functionality)
                .is_ok_and(|a| a.module == "billing" && a.functionality == "refund");
            assert_eq!(
                verdict.status.as_str() == "BLACKLISTED",
                blocked,
                "{:?}/{:?}",
                c.module,
                c.functionality
            );
            if verdict.status.as_str() == "VALID" {
                assert!(canonical_action(&c.module, &c.functionality).is_ok());
            }
        }
        Err(e) => assert!(
            matches!(
                e.reason,
                "INVALID_JSON" | "MISSING_FIELD" | "INVALID_FIELD" | "PAYLOAD_TOO_LARGE"
            ),
            "unexpected reason {}",
            e.reason
        ),
    }
}

fn record_seeds() -> Vec<Vec<u8>> {
    let pk = SecretKey::generate(KeyKind::Publishable, Environment::Live);
    let secret = GatewaySecret::generate();
    let record = EdgeRecord {
        blacklist: vec![Rule::new("billing", "refund").expect("valid")],
        allowed_origins: vec!["https://*.example.org".into()],
        origin_url: Some("https://api.example.com/v1".into()),
        forward_cookies: true,
        gateway_secrets: vec![gateway::seal_for_edge(
            EDGE_SECRET.as_bytes(),
            "w1",
            &secret,
            Some(5),
        )],
        ..EdgeRecord::new(pk.digest(), "w1".into(), KeyState::Active, 3)
    };
    vec![serde_json::to_vec(&record).expect("serializable")]
}

fn record(input: &[u8]) {
    if let Ok(r) = serde_json::from_slice::<EdgeRecord>(input) {
        let again: EdgeRecord =
            serde_json::from_slice(&serde_json::to_vec(&r).expect("serializable"))
                .expect("re-parses");
        assert_eq!(again, r, "record round trip");
        let _ = gateway::Signer::for_record(
            &[EDGE_SECRET.as_bytes()],
            &r.workspace_id,
            &r.gateway_secrets,
            SYNC_NOW,
        );
        let compiled = r.compile();
        for (m, f) in [("billing", "refund"), ("Billing", "REFUND"), ("x", "y")] {
            let _ = compiled.blacklist.blocks(m, f);
        }
    }
}

fn sealed_seeds() -> Vec<Vec<u8>> {
    let secret = GatewaySecret::generate();
    let sealed = gateway::seal_for_edge(EDGE_SECRET.as_bytes(), "w1", &secret, None);
    vec![format!("{}\n{}\nw1", sealed.kid, sealed.sealed).into_bytes()]
}

fn sealed_secret(input: &[u8]) {
    let f = fields(input, 3);
    let sealed = SealedGatewaySecret {
        kid: text(&f[0]),
        sealed: text(&f[1]),
        not_after: None,
    };
    if let Some(s) = gateway::open_at_edge(&[EDGE_SECRET.as_bytes()], &text(&f[2]), &sealed) {
        // Only an authentic seal opens: re-sealing and opening gives the same secret.
        let again = gateway::seal_for_edge(EDGE_SECRET.as_bytes(), &text(&f[2]), &s, None);
        assert_eq!(
            gateway::open_at_edge(&[EDGE_SECRET.as_bytes()], &text(&f[2]), &again),
            Some(s)
        );
        assert_eq!(text(&f[2]), "w1", "opened for another workspace");
    }
}
