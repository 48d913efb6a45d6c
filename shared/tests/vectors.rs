//! The conformance vectors decide the same natively as they were recorded (the edge runs the
//! same file inside workerd).

use keygate_shared::conformance::{run, Vectors, VECTORS_JSON};

#[test]
fn every_vector_gives_its_recorded_outcome() {
    let report = run(VECTORS_JSON).expect("vectors parse");
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    assert!(report.passed >= 40, "only {} vectors ran", report.passed);
}

#[test]
fn vectors_cover_every_check_status_the_edge_can_give() {
    let v: Vectors = serde_json::from_str(VECTORS_JSON).unwrap();
    for status in [
        "VALID",
        "BLACKLISTED",
        "ORIGIN_NOT_ALLOWED",
        "REVOKED",
        "INVALID",
    ] {
        assert!(
            v.checks.iter().any(|c| c.status == status),
            "no {status} case"
        );
    }
    assert!(v
        .keys
        .iter()
        .any(|k| k.error.as_deref() == Some("KEY_BAD_CHECKSUM")));
    assert!(v
        .signatures
        .iter()
        .any(|s| s.error.as_deref() == Some("SIGNATURE_STALE")));
    assert!(v
        .signatures
        .iter()
        .any(|s| s.error.as_deref() == Some("SIGNATURE_INVALID")));
}

#[test]
fn recorded_digests_are_plain_sha256() {
    // Independent of keygate's code: SHA-256("abc") from FIPS 180-2.
    assert_eq!(
        keygate_shared::key::digest("abc").to_hex(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let v: Vectors = serde_json::from_str(VECTORS_JSON).unwrap();
    let tampered = run(&VECTORS_JSON.replace(&v.keys[0].digest, &"0".repeat(64))).unwrap();
    assert!(
        !tampered.failures.is_empty(),
        "a wrong recorded digest must be caught"
    );
}
