//! Blacklists: the (module, functionality) actions a publishable key may not perform.
//!
//! A workspace has a catalogue of modules, each with functionalities. A rule blocks one
//! functionality of one module, or with functionality `*` the whole module. Rules are
//! compiled into a [`BlacklistPolicy`] whose check is two hash lookups, whatever the number
//! of rules.
//!
//! Names are kept and compared in canonical form ([`crate::action::canonical_label`]: ASCII
//! lowercase, percent-escapes decoded once, anything else refused): rules and catalogues are
//! canonicalised when saved, and [`BlacklistPolicy::compile`] canonicalises again so a rule
//! saved before canonical forms existed (`Billing`) still blocks every spelling.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::action::canonical_label;

/// The functionality that stands for "every functionality of the module".
pub const WILDCARD: &str = "*";
/// Longest module or functionality name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether a module or functionality name is acceptable: 1 to 64 characters of ASCII letters,
/// digits, `_`, `-` and `.`, starting with a letter or digit.
pub fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// Why a rule or catalogue was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// A module name is empty, too long or uses characters outside the allowed set.
    InvalidModule,
    /// A functionality name is invalid.
    InvalidFunctionality,
    /// The module is not in the workspace's catalogue.
    UnknownModule,
    /// The module has no such functionality in the catalogue.
    UnknownFunctionality,
    /// The same name appears twice.
    Duplicate,
}

impl PolicyError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::InvalidModule => "INVALID_MODULE",
            PolicyError::InvalidFunctionality => "INVALID_FUNCTIONALITY",
            PolicyError::UnknownModule => "UNKNOWN_MODULE",
            PolicyError::UnknownFunctionality => "UNKNOWN_FUNCTIONALITY",
            PolicyError::Duplicate => "DUPLICATE_NAME",
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyError::InvalidModule => {
                "module names are 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
            }
            PolicyError::InvalidFunctionality => {
                "functionality names are 1-64 letters, digits, '_', '-' or '.', or '*' for the whole module"
            }
            PolicyError::UnknownModule => "the workspace's catalogue has no such module",
            PolicyError::UnknownFunctionality => "the module has no such functionality",
            PolicyError::Duplicate => "a name appears more than once",
        })
    }
}

impl std::error::Error for PolicyError {}

/// One blacklist rule. Construct with [`Rule::new`] to validate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    /// The module.
    pub module: String,
    /// The functionality, or `*` for the whole module.
    pub functionality: String,
}

impl Rule {
    /// A validated rule, in canonical form (`Billing`/`Refund` is saved as `billing/refund`).
    pub fn new(module: &str, functionality: &str) -> Result<Self, PolicyError> {
        let module = canonical_label(module).map_err(|_| PolicyError::InvalidModule)?;
        let functionality = if functionality == WILDCARD {
            functionality.into()
        } else {
            canonical_label(functionality).map_err(|_| PolicyError::InvalidFunctionality)?
        };
        Ok(Rule {
            module: module.into_owned(),
            functionality: functionality.into_owned(),
        })
    }

    /// Whether the rule blocks a whole module.
    pub fn is_whole_module(&self) -> bool {
        self.functionality == WILDCARD
    }
}

/// A workspace's catalogue of modules and their functionalities.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalogue {
    /// The modules.
    pub modules: Vec<Module>,
}

/// One module of a catalogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    /// Module name.
    pub name: String,
    /// Its functionalities.
    pub functionalities: Vec<String>,
}

impl Catalogue {
    /// Checks every name and that none repeats (comparing canonical forms, so `Billing` and
    /// `billing` are the same module).
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.clone().canonicalize().map(|_| ())
    }

    /// The catalogue with every name in canonical form, as it is saved; refused if a name
    /// does not canonicalise or two names are the same once canonical.
    pub fn canonicalize(self) -> Result<Catalogue, PolicyError> {
        let mut modules = HashSet::new();
        let mut out = Vec::with_capacity(self.modules.len());
        for m in self.modules {
            let name = canonical_label(&m.name)
                .map_err(|_| PolicyError::InvalidModule)?
                .into_owned();
            if !modules.insert(name.clone()) {
                return Err(PolicyError::Duplicate);
            }
            let mut funcs = HashSet::new();
            let mut functionalities = Vec::with_capacity(m.functionalities.len());
            for f in &m.functionalities {
                let f = canonical_label(f)
                    .map_err(|_| PolicyError::InvalidFunctionality)?
                    .into_owned();
                if !funcs.insert(f.clone()) {
                    return Err(PolicyError::Duplicate);
                }
                functionalities.push(f);
            }
            out.push(Module {
                name,
                functionalities,
            });
        }
        Ok(Catalogue { modules: out })
    }

    /// Validates a rule against the catalogue: the module must exist, and the functionality
    /// must be one of its own or `*`. Names compare in canonical form; the rule comes back
    /// canonical.
    pub fn rule(&self, module: &str, functionality: &str) -> Result<Rule, PolicyError> {
        let rule = Rule::new(module, functionality)?;
        let same =
            |stored: &str, canonical: &str| canonical_label(stored).is_ok_and(|s| s == canonical);
        let m = self
            .modules
            .iter()
            .find(|m| same(&m.name, &rule.module))
            .ok_or(PolicyError::UnknownModule)?;
        if !rule.is_whole_module()
            && !m
                .functionalities
                .iter()
                .any(|f| same(f, &rule.functionality))
        {
            return Err(PolicyError::UnknownFunctionality);
        }
        Ok(rule)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Blocked {
    Whole,
    Some(HashSet<String>),
}

/// Rules compiled for O(1) checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlacklistPolicy {
    by_module: HashMap<String, Blocked>,
}

impl BlacklistPolicy {
    /// Compiles rules; duplicates and rules shadowed by a whole-module rule collapse. Names
    /// are canonicalised; a rule naming a module that does not canonicalise blocks nothing
    /// (no check can name it either), one whose functionality does not canonicalise blocks
    /// its whole module (fail closed).
    pub fn compile<'a>(rules: impl IntoIterator<Item = &'a Rule>) -> Self {
        let mut by_module: HashMap<String, Blocked> = HashMap::new();
        for rule in rules {
            let Ok(module) = canonical_label(&rule.module) else {
                continue;
            };
            let entry = by_module
                .entry(module.into_owned())
                .or_insert_with(|| Blocked::Some(HashSet::new()));
            match canonical_label(&rule.functionality) {
                _ if rule.is_whole_module() => *entry = Blocked::Whole,
                Ok(f) => {
                    if let Blocked::Some(set) = entry {
                        set.insert(f.into_owned());
                    }
                }
                Err(_) => *entry = Blocked::Whole,
            }
        }
        BlacklistPolicy { by_module }
    }

    /// Whether calling `functionality` of `module` is blocked; both must be canonical
    /// ([`crate::action::canonical_action`]), as [`crate::check::check`] ensures.
    pub fn blocks(&self, module: &str, functionality: &str) -> bool {
        match self.by_module.get(module) {
            None => false,
            Some(Blocked::Whole) => true,
            Some(Blocked::Some(set)) => set.contains(functionality),
        }
    }

    /// Whether no rule is in force.
    pub fn is_empty(&self) -> bool {
        self.by_module.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(m: &str, f: &str) -> Rule {
        Rule::new(m, f).unwrap()
    }

    #[test]
    fn a_rule_blocks_only_its_functionality() {
        let p = BlacklistPolicy::compile(&[r("billing", "refund")]);
        assert!(p.blocks("billing", "refund"));
        assert!(!p.blocks("billing", "charge"));
        assert!(!p.blocks("orders", "refund"));
    }

    #[test]
    fn wildcard_blocks_the_whole_module_and_shadows_narrower_rules() {
        let p = BlacklistPolicy::compile(&[
            r("billing", "refund"),
            r("billing", "*"),
            r("orders", "list"),
        ]);
        assert!(p.blocks("billing", "anything"));
        assert!(p.blocks("orders", "list"));
        assert!(!p.blocks("orders", "create"));
        let q = BlacklistPolicy::compile(&[r("billing", "*"), r("billing", "refund")]);
        assert!(
            q.blocks("billing", "charge"),
            "a later narrow rule must not undo `*`"
        );
    }

    #[test]
    fn empty_policy_blocks_nothing() {
        let p = BlacklistPolicy::compile(&[]);
        assert!(p.is_empty());
        assert!(!p.blocks("billing", "refund"));
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(Rule::new("", "x"), Err(PolicyError::InvalidModule));
        assert_eq!(Rule::new("*", "x"), Err(PolicyError::InvalidModule));
        assert_eq!(Rule::new("a b", "x"), Err(PolicyError::InvalidModule));
        assert_eq!(
            Rule::new("a", "x/y"),
            Err(PolicyError::InvalidFunctionality)
        );
        assert_eq!(
            Rule::new("a", &"x".repeat(65)),
            Err(PolicyError::InvalidFunctionality)
        );
        assert!(Rule::new("billing.v2", "refund-all").is_ok());
    }

    #[test]
    fn rules_are_checked_against_the_catalogue() {
        let cat = Catalogue {
            modules: vec![Module {
                name: "billing".into(),
                functionalities: vec!["refund".into(), "charge".into()],
            }],
        };
        assert!(cat.validate().is_ok());
        assert!(cat.rule("billing", "refund").is_ok());
        assert!(cat.rule("billing", "*").is_ok());
        assert_eq!(cat.rule("orders", "list"), Err(PolicyError::UnknownModule));
        assert_eq!(
            cat.rule("billing", "list"),
            Err(PolicyError::UnknownFunctionality)
        );
        let dup = Catalogue {
            modules: vec![
                Module {
                    name: "a".into(),
                    functionalities: vec![],
                },
                Module {
                    name: "a".into(),
                    functionalities: vec![],
                },
            ],
        };
        assert_eq!(dup.validate(), Err(PolicyError::Duplicate));
    }

    proptest! {
        #[test]
        fn compiled_policy_agrees_with_the_naive_reading(
            rules in proptest::collection::vec(("[a-c]", prop_oneof!["[x-z]", Just("*".to_string())]), 0..12),
            module in "[a-d]",
            func in "[w-z]",
        ) {
            let rules: Vec<Rule> = rules.iter().map(|(m, f)| r(m, f)).collect();
            let naive = rules.iter().any(|rule| rule.module == module && (rule.functionality == "*" || rule.functionality == func));
            prop_assert_eq!(BlacklistPolicy::compile(&rules).blocks(&module, &func), naive);
        }
    }
}
