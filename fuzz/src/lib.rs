//! # keygate-fuzz
//!
//! Fuzzing on stable Rust of every parser that reads untrusted bytes: key strings, sync pushes
//! (headers and body), gateway signature headers, action labels and blacklist rules, origins
//! and origin URLs, `/v1/check` bodies, gateway `{rest}` paths, edge records and sealed
//! gateway secrets.
//!
//! `cargo fuzz` needs nightly, so this is a self-contained mutation fuzzer instead: each
//! [`Target`] has seed inputs (valid and nearly valid examples) and a dictionary of tokens
//! that matter to it (`%2F`, `..`, `t=`, `v1=`, `u64::MAX`, ...); [`Fuzzer`] mutates seeds
//! with bit flips, byte edits, token insertions, splices and truncations from a seeded
//! xorshift generator (reproducible). It has no coverage feedback; what it brings is volume
//! (millions of inputs) and **oracles**: each target checks properties beyond "does not
//! panic" (canonical forms are fixed points, an accepted `{rest}` hides no separator once
//! decoded, accepted origin URLs round-trip, signatures made verify, a parsed batch
//! re-serialises to itself). A panic or a broken property is a failure, reported with the
//! input.
//!
//! `cargo xtask fuzz [--seconds S | --iterations N] [--target NAME]` runs it (release
//! build); `fuzz/tests/short_run.rs` runs every target briefly in the test suite.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod targets;

pub use targets::TARGETS;

/// One fuzz target.
pub struct Target {
    /// Name, for `--target` and reports.
    pub name: &'static str,
    /// Starting inputs.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens worth inserting.
    pub dictionary: &'static [&'static str],
    /// Runs one input; panics (with a message) when a property does not hold.
    pub run: fn(&[u8]),
}

/// A small, fast, reproducible generator (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// From a seed (0 is replaced by a fixed odd constant).
    pub fn new(seed: u64) -> Self {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Bytes worth trying anywhere.
const INTERESTING_BYTES: &[u8] = &[
    0, 1, b'\n', b'\r', b' ', b'"', b'%', b'.', b'/', b'\\', b':', b',', b';', b'=', b'{', b'}',
    b'[', b']', 0x7f, 0x80, 0xc0, 0xff,
];

/// Longest input the fuzzer builds.
pub const MAX_INPUT: usize = 4096;

/// Mutates seeds of one target.
pub struct Fuzzer<'t> {
    target: &'t Target,
    corpus: Vec<Vec<u8>>,
    rng: Rng,
}

impl<'t> Fuzzer<'t> {
    /// A fuzzer for `target` from `seed`.
    pub fn new(target: &'t Target, seed: u64) -> Self {
        let mut corpus = (target.seeds)();
        if corpus.is_empty() {
            corpus.push(Vec::new());
        }
        Fuzzer {
            target,
            corpus,
            rng: Rng::new(seed),
        }
    }

    /// The next input: a seed (or a previous input) mutated 1 to 8 times.
    pub fn next_input(&mut self) -> Vec<u8> {
        let mut input = self.corpus[self.rng.below(self.corpus.len())].clone();
        let rounds = 1 + self.rng.below(8);
        for _ in 0..rounds {
            self.mutate(&mut input);
        }
        input.truncate(MAX_INPUT);
        // Keep some mutants as new starting points (bounded), so edits accumulate.
        if self.rng.below(64) == 0 && self.corpus.len() < 4096 {
            self.corpus.push(input.clone());
        }
        input
    }

    fn mutate(&mut self, input: &mut Vec<u8>) {
        let rng = &mut self.rng;
        let len = input.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next_u64() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(8));
                input.drain(i..i + n);
            }
            4 | 5 if !self.target.dictionary.is_empty() => {
                let token = self.target.dictionary[rng.below(self.target.dictionary.len())];
                let i = rng.below(len + 1);
                if rng.below(2) == 0 || len == 0 {
                    input.splice(i..i, token.bytes());
                } else {
                    // Overwrite instead of insert.
                    let end = (i + token.len()).min(len);
                    input.splice(i..end, token.bytes());
                }
            }
            6 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(32));
                let chunk: Vec<u8> = input[i..i + n].to_vec();
                let j = rng.below(len + 1);
                input.splice(j..j, chunk);
            }
            7 => {
                let other = &self.corpus[rng.below(self.corpus.len())];
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let j = rng.below(len + 1);
                    input.truncate(j);
                    input.extend_from_slice(&other[i..]);
                }
            }
            8 if len > 0 => {
                input.truncate(rng.below(len));
            }
            _ => input.push(INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())]),
        }
    }
}

/// A failing input.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The target.
    pub target: &'static str,
    /// The input.
    pub input: Vec<u8>,
    /// The panic message.
    pub message: String,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Inputs run.
    pub inputs: u64,
    /// The first failure, if any (the run stops there).
    pub failure: Option<Failure>,
}

/// Runs one input; a panic becomes a [`Failure`].
pub fn run_one(target: &Target, input: &[u8]) -> Result<(), Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (target.run)(input))).map_err(|e| {
        let message = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".into());
        Failure {
            target: target.name,
            input: input.to_vec(),
            message,
        }
    })
}

/// Runs `target`: every seed, then mutants until `iterations` inputs or `deadline`, whichever
/// comes first; stops at the first failure.
pub fn run_target(
    target: &Target,
    seed: u64,
    iterations: u64,
    deadline: Option<std::time::Instant>,
) -> Outcome {
    let mut outcome = Outcome::default();
    for s in (target.seeds)() {
        outcome.inputs += 1;
        if let Err(f) = run_one(target, &s) {
            outcome.failure = Some(f);
            return outcome;
        }
    }
    let mut fuzzer = Fuzzer::new(target, seed);
    while outcome.inputs < iterations {
        if outcome.inputs % 1024 == 0 && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
        let input = fuzzer.next_input();
        outcome.inputs += 1;
        if let Err(f) = run_one(target, &input) {
            outcome.failure = Some(f);
            break;
        }
    }
    outcome
}
