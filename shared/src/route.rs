//! The gateway route map: which action (module, functionality) an HTTP request belongs to,
//! decided from its method and path, so the edge need not trust labels the caller chose.
//!
//! ## Routes
//!
//! A route is `METHOD[,METHOD] /path/{segment}/*`: one to [`MAX_METHODS`] upper-case method
//! tokens, a space, then a path of at most [`MAX_ROUTE_SEGMENTS`] segments. A segment is a
//! **literal** (matched ASCII-case-insensitively, percent-escapes decoded once), a
//! **parameter** `{name}` (exactly one non-empty segment) or, as the last segment only, the
//! **wildcard** `*` (zero or more segments: `/billing/*` covers `/billing` too). One trailing
//! `/` is ignored; `/` alone is the root.
//!
//! ## Which route wins
//!
//! Of the routes whose method and path match, the most specific wins: comparing segment by
//! segment from the left, a literal beats a parameter, a parameter beats the wildcard, and a
//! route that ends exactly where the path ends beats a wildcard there. Two routes that would
//! tie (same literals, parameters in the same places, the same wildcard, a method in common)
//! are an ambiguous overlap, refused by [`RouteMap::compile`] with an error naming both. So
//! every request has at most one action ([`RouteMap::classify`]).
//!
//! ## Canonical paths
//!
//! A request path is judged in canonical form ([`CanonicalPath::parse`]): first
//! [`crate::gateway::check_rest`] (encoded separators, dot segments, backslashes, control
//! characters and double encoding are refused, never reinterpreted), then empty segments are
//! dropped (duplicate slashes and a trailing slash do not change the path), and each segment
//! is percent-decoded once and must be UTF-8. What the origin is sent is that canonical path
//! re-encoded ([`CanonicalPath::to_forward_path`]), so the origin sees exactly what was
//! classified.
//!
//! ## Cost
//!
//! The map is compiled into a segment trie. Classification walks the path once, looking each
//! segment up by hash; it visits only trie nodes on the path, never the list of routes, so its
//! cost depends on the path's depth and not on how many routes there are (see the `route`
//! benchmark in `shared/benches/hot_paths.rs`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::action::canonical_label;
use crate::gateway::{check_rest, RestError};

/// Most routes in one workspace's map.
pub const MAX_ROUTES: usize = 1_000;
/// Most routes bound to one functionality.
pub const MAX_ROUTES_PER_FUNCTIONALITY: usize = 64;
/// Longest route text, in bytes.
pub const MAX_ROUTE_LEN: usize = 256;
/// Most path segments in a route pattern.
pub const MAX_ROUTE_SEGMENTS: usize = 16;
/// Most methods one route names.
pub const MAX_METHODS: usize = 8;
/// Longest method token.
pub const MAX_METHOD_LEN: usize = 16;

/// One functionality's routes, as the edge record and the control plane store them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteBinding {
    /// Module (canonical).
    pub module: String,
    /// Functionality (canonical).
    pub functionality: String,
    /// Route texts, e.g. `POST /billing/refunds/*`.
    pub routes: Vec<String>,
}

/// Why a route or a map is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteError {
    /// Stable machine-readable code (`ROUTE_SYNTAX`, `ROUTE_METHOD`, `ROUTE_WILDCARD`,
    /// `ROUTE_CONFLICT`, `ROUTE_LIMIT`, `ROUTE_LABEL`).
    pub code: &'static str,
    /// What is wrong, naming the route(s).
    pub message: String,
}

impl RouteError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        RouteError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RouteError {}

/// One segment of a route pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// A literal, lowercased and decoded.
    Literal(String),
    /// A named parameter: one non-empty segment.
    Param(String),
    /// `*`: zero or more segments (last only).
    Wildcard,
}

/// A parsed route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Methods, upper case, deduplicated, in the order written.
    pub methods: Vec<String>,
    /// Path segments.
    pub segments: Vec<Segment>,
}

fn is_method_token(m: &str) -> bool {
    !m.is_empty() && m.len() <= MAX_METHOD_LEN && m.bytes().all(|b| b.is_ascii_uppercase())
}

fn is_param_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Percent-decodes once; `None` on a broken escape or non-UTF-8 result.
fn decode_segment(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return Some(s.to_owned());
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = (*b.get(i + 1)? as char).to_digit(16)?;
            let lo = (*b.get(i + 2)? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The matching key of a literal: ASCII-lowercased (non-ASCII kept as is).
fn fold(s: &str) -> String {
    s.to_ascii_lowercase()
}

impl Route {
    /// Parses and validates a route text (see the module docs).
    pub fn parse(text: &str) -> Result<Route, RouteError> {
        let syntax = |why: &str| RouteError::new("ROUTE_SYNTAX", format!("route `{text}`: {why}"));
        if text.len() > MAX_ROUTE_LEN {
            return Err(RouteError::new(
                "ROUTE_LIMIT",
                format!("a route is at most {MAX_ROUTE_LEN} bytes"),
            ));
        }
        let (methods_text, path) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| syntax("write `METHOD /path`, e.g. `POST /billing/refunds/*`"))?;
        let path = path.trim();
        let mut methods: Vec<String> = Vec::new();
        for m in methods_text.split(',') {
            let m = m.trim();
            if !is_method_token(m) {
                return Err(RouteError::new(
                    "ROUTE_METHOD",
                    format!("route `{text}`: methods are upper-case tokens such as GET or POST, separated by commas"),
                ));
            }
            if !methods.iter().any(|x| x == m) {
                methods.push(m.to_owned());
            }
        }
        if methods.len() > MAX_METHODS {
            return Err(RouteError::new(
                "ROUTE_LIMIT",
                format!("route `{text}`: at most {MAX_METHODS} methods"),
            ));
        }
        let rest = path
            .strip_prefix('/')
            .ok_or_else(|| syntax("the path starts with `/`"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = Vec::new();
        if !rest.is_empty() {
            let parts: Vec<&str> = rest.split('/').collect();
            if parts.len() > MAX_ROUTE_SEGMENTS {
                return Err(RouteError::new(
                    "ROUTE_LIMIT",
                    format!("route `{text}`: at most {MAX_ROUTE_SEGMENTS} segments"),
                ));
            }
            for (i, part) in parts.iter().enumerate() {
                if part.is_empty() {
                    return Err(syntax("empty segment (`//`)"));
                }
                if *part == "*" {
                    if i + 1 != parts.len() {
                        return Err(RouteError::new(
                            "ROUTE_WILDCARD",
                            format!("route `{text}`: `*` may only be the last segment"),
                        ));
                    }
                    segments.push(Segment::Wildcard);
                } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
                {
                    if !is_param_name(name) {
                        return Err(syntax("a parameter is `{name}`: letters, digits, `_`"));
                    }
                    segments.push(Segment::Param(name.to_owned()));
                } else {
                    if part.contains(['{', '}', '*']) {
                        return Err(syntax("`{`, `}` and `*` are not literal characters"));
                    }
                    check_rest(part).map_err(|e| syntax(&e.to_string()))?;
                    if part.contains([' ', '?', '#']) {
                        return Err(syntax("spaces, `?` and `#` are not path characters"));
                    }
                    let decoded = decode_segment(part)
                        .ok_or_else(|| syntax("escapes must decode to UTF-8"))?;
                    segments.push(Segment::Literal(fold(&decoded)));
                }
            }
        }
        Ok(Route { methods, segments })
    }
}

/// A request path in canonical form (see the module docs): decoded, non-empty segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanonicalPath {
    segments: Vec<String>,
}

/// Why a request path has no canonical form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Refused by [`crate::gateway::check_rest`].
    Rest(RestError),
    /// A segment does not decode to UTF-8.
    NotUtf8,
}

impl PathError {
    /// Stable machine-readable code of the underlying refusal.
    pub fn code(self) -> &'static str {
        match self {
            PathError::Rest(e) => e.code(),
            PathError::NotUtf8 => "NOT_UTF8",
        }
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::Rest(e) => e.fmt(f),
            PathError::NotUtf8 => f.write_str("path segments must decode to UTF-8"),
        }
    }
}

impl std::error::Error for PathError {}

impl CanonicalPath {
    /// The canonical form of a path as the runtime's URL parser left it (with or without
    /// the leading `/`; no query).
    pub fn parse(path: &str) -> Result<CanonicalPath, PathError> {
        check_rest(path).map_err(PathError::Rest)?;
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| decode_segment(s).ok_or(PathError::NotUtf8))
            .collect::<Result<_, _>>()?;
        Ok(CanonicalPath { segments })
    }

    /// The decoded segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The path to send the origin, without its leading `/`: the segments joined by `/`,
    /// every byte but `A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , = : @` percent-encoded.
    pub fn to_forward_path(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            for b in s.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,=:@".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
        out
    }
}

/// Methods -> index of (action, route text) at one trie position.
type Ends = Vec<(String, u32)>;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Node {
    literals: HashMap<String, Node>,
    param: Option<Box<Node>>,
    /// Routes ending here.
    exact: Ends,
    /// Routes whose `*` starts here.
    wildcard: Ends,
}

fn end_for(ends: &Ends, method: &str) -> Option<u32> {
    ends.iter().find(|(m, _)| m == method).map(|(_, i)| *i)
}

/// A compiled route map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteMap {
    root: Node,
    /// (module, functionality, route text) per route.
    routes: Vec<(String, String, String)>,
}

/// The action a request resolves to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified<'a> {
    /// Module (canonical).
    pub module: &'a str,
    /// Functionality (canonical).
    pub functionality: &'a str,
    /// The route text that matched.
    pub route: &'a str,
}

impl RouteMap {
    /// Compiles bindings: every label must be canonical-able, every route valid, at most
    /// [`MAX_ROUTES`] routes, and no two routes may overlap ambiguously (`ROUTE_CONFLICT`
    /// naming both).
    pub fn compile(bindings: &[RouteBinding]) -> Result<RouteMap, RouteError> {
        let mut map = RouteMap::default();
        for b in bindings {
            let (Ok(module), Ok(functionality)) = (
                canonical_label(&b.module),
                canonical_label(&b.functionality),
            ) else {
                return Err(RouteError::new(
                    "ROUTE_LABEL",
                    format!(
                        "routes are bound to a module and functionality of the catalogue (`{}/{}`)",
                        b.module, b.functionality
                    ),
                ));
            };
            if b.routes.len() > MAX_ROUTES_PER_FUNCTIONALITY {
                return Err(RouteError::new(
                    "ROUTE_LIMIT",
                    format!("a functionality has at most {MAX_ROUTES_PER_FUNCTIONALITY} routes"),
                ));
            }
            for text in &b.routes {
                if map.routes.len() == MAX_ROUTES {
                    return Err(RouteError::new(
                        "ROUTE_LIMIT",
                        format!("a route map has at most {MAX_ROUTES} routes"),
                    ));
                }
                let route = Route::parse(text)?;
                let index = map.routes.len() as u32;
                map.routes.push((
                    module.to_string(),
                    functionality.to_string(),
                    text.trim().to_owned(),
                ));
                let mut node = &mut map.root;
                let mut wildcard = false;
                for seg in &route.segments {
                    node = match seg {
                        Segment::Literal(l) => node.literals.entry(l.clone()).or_default(),
                        Segment::Param(_) => node.param.get_or_insert_with(Default::default),
                        Segment::Wildcard => {
                            wildcard = true;
                            break;
                        }
                    };
                }
                let ends = if wildcard {
                    &mut node.wildcard
                } else {
                    &mut node.exact
                };
                for m in &route.methods {
                    if let Some(other) = end_for(ends, m) {
                        let (om, of, ot) = &map.routes[other as usize];
                        return Err(RouteError::new(
                            "ROUTE_CONFLICT",
                            format!(
                                "route `{}` of {module}/{functionality} overlaps route `{ot}` of {om}/{of} ({m}): the same request would match both",
                                text.trim()
                            ),
                        ));
                    }
                    ends.push((m.clone(), index));
                }
            }
        }
        Ok(map)
    }

    /// Whether the map has no routes (a workspace without a map).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// How many routes the map has.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// The one action `method` + `path` belongs to, if any (see the module docs for which
    /// route wins). `method` is compared upper-cased.
    pub fn classify(&self, method: &str, path: &CanonicalPath) -> Option<Classified<'_>> {
        let upper;
        let method = if method.bytes().any(|b| b.is_ascii_lowercase()) {
            upper = method.to_ascii_uppercase();
            upper.as_str()
        } else {
            method
        };
        let index = walk(&self.root, method, &path.segments)?;
        let (module, functionality, route) = &self.routes[index as usize];
        Some(Classified {
            module,
            functionality,
            route,
        })
    }
}

/// Depth-first in precedence order (literal, parameter, then the wildcard), so the first
/// match is the most specific. Each trie node is visited at most once.
fn walk(node: &Node, method: &str, rest: &[String]) -> Option<u32> {
    let Some((first, tail)) = rest.split_first() else {
        return end_for(&node.exact, method).or_else(|| end_for(&node.wildcard, method));
    };
    let literal = if first.bytes().any(|b| b.is_ascii_uppercase()) {
        node.literals.get(&fold(first))
    } else {
        node.literals.get(first.as_str())
    };
    literal
        .and_then(|n| walk(n, method, tail))
        .or_else(|| node.param.as_deref().and_then(|n| walk(n, method, tail)))
        .or_else(|| end_for(&node.wildcard, method))
}

/// What the gateway does with a request, given the workspace's map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteVerdict<'a> {
    /// The workspace has no map: the labels the caller gave stand.
    NoMap,
    /// The request resolves to this action.
    Action(Classified<'a>),
    /// The workspace has a map and no route matches: `404 ROUTE_NOT_MAPPED`.
    NotMapped,
}

/// A record's route map as the edge holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RoutePolicy {
    /// No routes: gateway requests keep their labels; `/g/` answers `ROUTE_NOT_MAPPED`.
    #[default]
    None,
    /// A compiled map.
    Mapped(RouteMap),
    /// The record carries routes that do not compile (a control plane bug or tampering):
    /// every gateway request is refused, never forwarded unclassified (fail closed).
    Broken,
}

impl RoutePolicy {
    /// Compiles a record's bindings.
    pub fn compile(bindings: &[RouteBinding]) -> RoutePolicy {
        if bindings.iter().all(|b| b.routes.is_empty()) {
            return RoutePolicy::None;
        }
        match RouteMap::compile(bindings) {
            Ok(map) => RoutePolicy::Mapped(map),
            Err(_) => RoutePolicy::Broken,
        }
    }

    /// Classifies a request (`None`: the policy is broken; refuse).
    pub fn classify(&self, method: &str, path: &CanonicalPath) -> Option<RouteVerdict<'_>> {
        match self {
            RoutePolicy::None => Some(RouteVerdict::NoMap),
            RoutePolicy::Broken => None,
            RoutePolicy::Mapped(m) => Some(
                m.classify(method, path)
                    .map_or(RouteVerdict::NotMapped, RouteVerdict::Action),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bind(m: &str, f: &str, routes: &[&str]) -> RouteBinding {
        RouteBinding {
            module: m.into(),
            functionality: f.into(),
            routes: routes.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn sample() -> RouteMap {
        RouteMap::compile(&[
            bind("billing", "refund", &["POST /billing/refunds/*"]),
            bind(
                "billing",
                "read",
                &["GET,HEAD /billing/{id}", "GET /billing/*"],
            ),
            bind("billing", "me", &["GET /billing/me"]),
            bind("public", "read", &["GET /*"]),
            bind("users", "get", &["GET /users/{id}/profile"]),
            bind("users", "admin", &["GET /users/admin/{x}"]),
        ])
        .unwrap()
    }

    fn class<'a>(m: &'a RouteMap, method: &str, path: &str) -> Option<(&'a str, &'a str)> {
        m.classify(method, &CanonicalPath::parse(path).unwrap())
            .map(|c| (c.module, c.functionality))
    }

    #[test]
    fn the_most_specific_route_wins() {
        let m = sample();
        assert_eq!(
            class(&m, "POST", "billing/refunds/1"),
            Some(("billing", "refund"))
        );
        assert_eq!(
            class(&m, "POST", "billing/refunds"),
            Some(("billing", "refund"))
        );
        assert_eq!(class(&m, "GET", "billing/me"), Some(("billing", "me")));
        assert_eq!(class(&m, "GET", "billing/42"), Some(("billing", "read")));
        assert_eq!(class(&m, "HEAD", "billing/42"), Some(("billing", "read")));
        assert_eq!(class(&m, "GET", "billing/42/x"), Some(("billing", "read")));
        assert_eq!(class(&m, "GET", "billing"), Some(("billing", "read")));
        assert_eq!(class(&m, "GET", ""), Some(("public", "read")));
        assert_eq!(class(&m, "GET", "other/thing"), Some(("public", "read")));
        assert_eq!(class(&m, "POST", "other/thing"), None);
        assert_eq!(class(&m, "DELETE", "billing/refunds/1"), None);
        // Backtracking: the literal branch `admin` fails, the parameter branch matches.
        assert_eq!(
            class(&m, "GET", "users/admin/profile"),
            Some(("users", "admin"))
        );
        assert_eq!(
            class(&m, "GET", "users/bob/profile"),
            Some(("users", "get"))
        );
    }

    #[test]
    fn every_spelling_of_a_path_classifies_alike() {
        let m = sample();
        for spelling in [
            "billing/refunds/1",
            "Billing/REFUNDS/1",
            "%62illing/refunds/1",
            "billing//refunds///1",
            "billing/refunds/1/",
            "/billing/refunds/1",
            "billing/re%66unds/1",
            "billing/re%46unds/1",
        ] {
            assert_eq!(
                class(&m, "post", spelling),
                Some(("billing", "refund")),
                "{spelling}"
            );
        }
        for refused in [
            "billing/x/../refunds",
            "billing/%2e%2e/refunds",
            "billing%2Frefunds",
            "billing\\refunds",
            "billing/%2561",
            "a/%ff",
        ] {
            assert!(CanonicalPath::parse(refused).is_err(), "{refused}");
        }
        let p = CanonicalPath::parse("Billing//a%20b/%C3%A9/").unwrap();
        assert_eq!(p.to_forward_path(), "Billing/a%20b/%C3%A9");
    }

    #[test]
    fn ambiguous_routes_are_refused_naming_both() {
        let e = RouteMap::compile(&[
            bind("a", "x", &["GET /items/{id}"]),
            bind("b", "y", &["GET,POST /Items/{other}/"]),
        ])
        .unwrap_err();
        assert_eq!(e.code, "ROUTE_CONFLICT");
        assert!(e.message.contains("GET /items/{id}"), "{}", e.message);
        assert!(e.message.contains("b/y"), "{}", e.message);
        assert!(e.message.contains("a/x"), "{}", e.message);
        // Different methods, or a more specific shape, do not conflict.
        RouteMap::compile(&[
            bind("a", "x", &["GET /items/{id}"]),
            bind(
                "b",
                "y",
                &["POST /items/{id}", "GET /items/new", "GET /items/*"],
            ),
        ])
        .unwrap();
    }

    #[test]
    fn bad_routes_are_refused_with_a_code() {
        for (text, code) in [
            ("/x", "ROUTE_SYNTAX"),
            ("get /x", "ROUTE_METHOD"),
            ("GET x", "ROUTE_SYNTAX"),
            ("GET /a//b", "ROUTE_SYNTAX"),
            ("GET /*/a", "ROUTE_WILDCARD"),
            ("GET /{a-b}", "ROUTE_SYNTAX"),
            ("GET /a/../b", "ROUTE_SYNTAX"),
            ("GET /a%2Fb", "ROUTE_SYNTAX"),
            ("GET /a*", "ROUTE_SYNTAX"),
            ("GET,,POST /a", "ROUTE_METHOD"),
        ] {
            assert_eq!(Route::parse(text).unwrap_err().code, code, "{text}");
        }
        let long = format!("GET {}", "/a".repeat(17));
        assert_eq!(Route::parse(&long).unwrap_err().code, "ROUTE_LIMIT");
        assert_eq!(
            RouteMap::compile(&[bind("Bad/Label", "x", &["GET /"])])
                .unwrap_err()
                .code,
            "ROUTE_LABEL"
        );
    }

    #[test]
    fn broken_maps_fail_closed_and_empty_ones_are_no_map() {
        let p = CanonicalPath::parse("a").unwrap();
        assert_eq!(
            RoutePolicy::compile(&[bind("a", "b", &["nonsense"])]).classify("GET", &p),
            None
        );
        assert_eq!(
            RoutePolicy::compile(&[bind("a", "b", &[])]).classify("GET", &p),
            Some(RouteVerdict::NoMap)
        );
    }

    // --- the naive reading: every route that matches, the most specific by its key ---

    fn naive_matches(route: &Route, method: &str, path: &[String]) -> Option<Vec<u8>> {
        if !route.methods.iter().any(|m| m == method) {
            return None;
        }
        let mut key = Vec::new();
        for (i, seg) in route.segments.iter().enumerate() {
            match seg {
                Segment::Wildcard => {
                    key.push(2);
                    return Some(key);
                }
                Segment::Literal(l) => {
                    if path.get(i).map(|p| fold(p)) != Some(l.clone()) {
                        return None;
                    }
                    key.push(0);
                }
                Segment::Param(_) => {
                    path.get(i)?;
                    key.push(1);
                }
            }
        }
        (route.segments.len() == path.len()).then(|| {
            key.push(0);
            key
        })
    }

    fn naive(bindings: &[RouteBinding], method: &str, path: &[String]) -> Option<(String, String)> {
        let mut best: Option<(Vec<u8>, (String, String))> = None;
        for b in bindings {
            for text in &b.routes {
                let r = Route::parse(text).unwrap();
                if let Some(key) = naive_matches(&r, method, path) {
                    if best.as_ref().is_none_or(|(k, _)| key < *k) {
                        best = Some((key, (b.module.clone(), b.functionality.clone())));
                    }
                }
            }
        }
        best.map(|(_, a)| a)
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("A".to_string()),
            Just("{p}".to_string()),
        ]
    }

    fn route_text() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("GET"), Just("POST"), Just("GET,POST")],
            proptest::collection::vec(segment(), 0..4),
            any::<bool>(),
        )
            .prop_map(|(m, segs, wild)| {
                let mut p = segs.join("/");
                if wild {
                    if !p.is_empty() {
                        p.push('/');
                    }
                    p.push('*');
                }
                format!("{m} /{p}")
            })
    }

    proptest! {
        #[test]
        fn matching_agrees_with_the_naive_reading(
            texts in proptest::collection::vec(route_text(), 1..12),
            path in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("B"), Just("c")], 0..5),
            method in prop_oneof![Just("GET"), Just("POST"), Just("PUT")],
        ) {
            // One functionality per route; maps with ambiguous overlaps are refused, so keep
            // the routes in order until the first conflict.
            let mut bindings = Vec::new();
            for (i, t) in texts.iter().enumerate() {
                let mut next = bindings.clone();
                next.push(bind("m", &format!("f{i}"), &[t]));
                if RouteMap::compile(&next).is_ok() {
                    bindings = next;
                }
            }
            let map = RouteMap::compile(&bindings).unwrap();
            let path: Vec<String> = path.into_iter().map(String::from).collect();
            let joined = path.join("/");
            let got = map
                .classify(method, &CanonicalPath::parse(&joined).unwrap())
                .map(|c| (c.module.to_string(), c.functionality.to_string()));
            prop_assert_eq!(got, naive(&bindings, method, &path));
        }

        #[test]
        fn canonical_paths_are_fixed_points(s in "[a-zA-Z0-9/%_.~-]{0,40}") {
            if let Ok(p) = CanonicalPath::parse(&s) {
                let again = CanonicalPath::parse(&p.to_forward_path()).unwrap();
                prop_assert_eq!(again, p);
            }
        }
    }
}
