//! Diffie-Hellman parameters for IBKR's OAuth handshake: the prime, its
//! PKCS#3 PEM file and the `OAUTH_DH_PRIME` hex line.
//!
//! IBKR always uses generator 2 with a prime the user uploads as
//! `dhparam.pem`. This module makes that prime (a fresh safe prime, the kind
//! `openssl dhparam` makes, or RFC 7919's ffdhe2048 group), writes and reads
//! the PEM, and renders the hex IBKR expects in `.env`. It owns no files and
//! prints nothing; `keys` writes the key set and the command shows progress.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use num_bigint::{BigUint, RandBigInt};
use num_integer::Integer;
use num_traits::{One, Zero};
use rand::Rng;

use crate::error;

/// The generator IBKR uses with every DH prime.
pub const GENERATOR: u32 = 2;

/// The prime size IBKR's portal expects, and the default for generation.
pub const DEFAULT_BITS: u64 = 2048;

/// Smallest prime size [`generate_safe_prime`] accepts. Sizes this small are
/// only good for tests; the command decides what it lets users pick.
pub const MIN_BITS: u64 = 64;

/// Largest prime size [`generate_safe_prime`] accepts (OpenSSL's own cap
/// for DH moduli is 10000 bits; beyond 8192 a search takes hours).
pub const MAX_BITS: u64 = 8192;

/// Miller-Rabin rounds with random bases that a safe prime's `q` must pass,
/// the count OpenSSL 3 uses for 2048-bit candidates (error below 2^-128).
pub const MR_ROUNDS: usize = 64;

/// RFC 7919 appendix A.1 `ffdhe2048`, a 2048-bit safe prime whose digits
/// come from e, used with generator 2. Uppercase hex, as the RFC prints it.
pub const FFDHE2048_PRIME_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFADF85458A2BB4A9AAFDC5620273D3CF1D8B9C583CE2D3695",
    "A9E13641146433FBCC939DCE249B3EF97D2FE363630C75D8F681B202AEC4617A",
    "D3DF1ED5D5FD65612433F51F5F066ED0856365553DED1AF3B557135E7F57C935",
    "984F0C70E0E68B77E2A689DAF3EFE8721DF158A136ADE73530ACCA4F483A797A",
    "BC0AB182B324FB61D108A94BB2C8E3FBB96ADAB760D7F4681D4F42A3DE394DF4",
    "AE56EDE76372BB190B07A7C8EE0A6D709E02FCE1CDF7E2ECC03404CD28342F61",
    "9172FE9CE98583FF8E4F1232EEF28183C3FE3B1B4C6FAD733BB5FCBC2EC22005",
    "C58EF1837D1683B2C6F34A26C1B2EFFA886B423861285C97FFFFFFFFFFFFFFFF",
);

const PEM_BEGIN: &str = "-----BEGIN DH PARAMETERS-----";
const PEM_END: &str = "-----END DH PARAMETERS-----";

/// A DH group as PKCS#3 describes it: an odd prime and a generator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhParams {
    prime: BigUint,
    generator: BigUint,
}

impl DhParams {
    /// Pairs `prime` with `generator`. Fails unless the prime is odd and at
    /// least [`MIN_BITS`] long and `1 < generator < prime - 1`; primality is
    /// not checked here (see [`is_safe_prime`]), as it takes a while.
    pub fn new(prime: BigUint, generator: BigUint) -> anyhow::Result<DhParams> {
        if prime.bits() < MIN_BITS || prime.is_even() {
            anyhow::bail!(
                "DH prime has {} bits and is {}; expected an odd prime of at least {MIN_BITS} bits",
                prime.bits(),
                if prime.is_even() { "even" } else { "odd" }
            );
        }
        if generator <= BigUint::one() || generator >= &prime - 1u32 {
            anyhow::bail!("DH generator {generator} is not between 1 and the prime minus 1");
        }
        Ok(DhParams { prime, generator })
    }

    /// A freshly generated prime with generator 2.
    pub fn with_generator_two(prime: BigUint) -> anyhow::Result<DhParams> {
        DhParams::new(prime, BigUint::from(GENERATOR))
    }

    /// RFC 7919's ffdhe2048 group, generator 2.
    pub fn ffdhe2048() -> DhParams {
        DhParams {
            prime: ffdhe2048_prime().clone(),
            generator: BigUint::from(GENERATOR),
        }
    }

    /// The prime `p`.
    pub fn prime(&self) -> &BigUint {
        &self.prime
    }

    /// The generator `g`.
    pub fn generator(&self) -> &BigUint {
        &self.generator
    }

    /// The size of the prime in bits.
    pub fn bits(&self) -> u64 {
        self.prime.bits()
    }

    /// The prime as `OAUTH_DH_PRIME` wants it; see [`oauth_prime_hex`].
    pub fn oauth_prime_hex(&self) -> String {
        oauth_prime_hex(&self.prime)
    }

    /// The PKCS#3 `BEGIN DH PARAMETERS` PEM file that `openssl dhparam`
    /// writes: DER `SEQUENCE { INTEGER p, INTEGER g }`, base64 in lines of 64
    /// characters, LF line ends, a final newline.
    pub fn to_pem(&self) -> String {
        let mut body = Vec::with_capacity(self.prime.bits() as usize / 8 + 16);
        push_der_integer(&mut body, &self.prime);
        push_der_integer(&mut body, &self.generator);
        let mut der = vec![0x30];
        push_der_length(&mut der, body.len());
        der.extend_from_slice(&body);

        let encoded = STANDARD.encode(&der);
        let mut pem = String::with_capacity(encoded.len() + encoded.len() / 64 + 64);
        pem.push_str(PEM_BEGIN);
        pem.push('\n');
        // Base64 output is ASCII, so byte chunks are whole characters.
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str(PEM_END);
        pem.push('\n');
        pem
    }

    /// Parses a PKCS#3 PEM, ours or OpenSSL's. Text around the PEM block is
    /// ignored; the optional third field (`privateValueLength`) is accepted
    /// and dropped. Errors say what was found instead of DH parameters.
    pub fn from_pem(text: &str) -> anyhow::Result<DhParams> {
        let Some(start) = text.find(PEM_BEGIN) else {
            if text.contains("-----BEGIN X9.42 DH PARAMETERS-----") {
                anyhow::bail!(
                    "found X9.42 DH parameters; expected PKCS#3 `{PEM_BEGIN}` \
                     (make them with `openssl dhparam`, not `-dsaparam` or genpkey's X9.42 type)"
                );
            }
            if let Some(label) = first_pem_label(text) {
                anyhow::bail!("found a `{label}` PEM block; expected `{PEM_BEGIN}`");
            }
            anyhow::bail!("no `{PEM_BEGIN}` line found");
        };
        let body = &text[start + PEM_BEGIN.len()..];
        let Some(end) = body.find(PEM_END) else {
            anyhow::bail!("`{PEM_BEGIN}` has no matching `{PEM_END}` line");
        };
        let base64_text: String = body[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = STANDARD
            .decode(base64_text.as_bytes())
            .context("DH parameters PEM body is not valid base64")?;
        parse_der(&der).context("DH parameters PEM body is not a PKCS#3 DER structure")
    }
}

/// The prime as IBKR's `OAUTH_DH_PRIME` wants it: lowercase hex, no leading
/// zeros, no colons, spaces or `0x`.
pub fn oauth_prime_hex(prime: &BigUint) -> String {
    prime.to_str_radix(16)
}

/// Reads a PKCS#3 `dhparam.pem` (for example one `openssl dhparam` made) and
/// checks that its generator is 2, as IBKR requires.
///
/// A missing file or one that is not generator-2 DH parameters is a usage
/// error naming the file; other I/O errors are plain failures. The prime's
/// primality is not tested.
pub fn read_params(path: &Path) -> anyhow::Result<DhParams> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(error::usage(format!(
                "DH parameters file {} does not exist",
                path.display()
            ))
            .hint("make one with `skim keys-gen` or `openssl dhparam -out dhparam.pem 2048`")
            .into());
        }
        Err(err) => {
            return Err(err)
                .with_context(|| format!("failed to read DH parameters from {}", path.display()));
        }
    };
    let params = String::from_utf8(text)
        .map_err(|_| anyhow::anyhow!("file is not text"))
        .and_then(|text| DhParams::from_pem(&text))
        .map_err(|err| {
            error::usage(format!(
                "{} does not hold PKCS#3 DH parameters: {err:#}",
                path.display()
            ))
        })?;
    if params.generator != BigUint::from(GENERATOR) {
        return Err(error::usage(format!(
            "{} uses DH generator {}; IBKR requires generator {GENERATOR}",
            path.display(),
            params.generator
        ))
        .hint("make a new file with `skim keys-gen` or `openssl dhparam -out dhparam.pem 2048`")
        .into());
    }
    Ok(params)
}

/// The `OAUTH_DH_PRIME` hex of an existing `dhparam.pem`; see [`read_params`].
pub fn read_oauth_prime_hex(path: &Path) -> anyhow::Result<String> {
    Ok(read_params(path)?.oauth_prime_hex())
}

/// Checks the arguments of [`generate_safe_prime`] without searching, so a
/// caller can refuse bad input before other slow work: `bits` must lie in
/// [`MIN_BITS`]..=[`MAX_BITS`] and `threads` must not be 0 (usage errors).
pub fn validate_search(bits: u64, threads: usize) -> anyhow::Result<()> {
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        return Err(error::usage(format!(
            "DH prime size {bits} bits is out of range; expected {MIN_BITS} to {MAX_BITS}"
        ))
        .into());
    }
    if threads == 0 {
        return Err(error::usage("DH search thread count is 0; expected at least 1").into());
    }
    Ok(())
}

/// The worker count [`generate_safe_prime`] should use by default: every
/// core the process may run on, or 1 when that is unknown.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Finds a random safe prime `p = 2q + 1` of exactly `bits` bits with `p`
/// and `q` prime and `p ≡ 23 (mod 24)`, so that 2 generates the subgroup of
/// order `q`: the kind `openssl dhparam -2` makes. The top two bits of `p`
/// are set. Starting points come from the thread-local CSPRNG.
///
/// `threads` workers search independently from their own starting points
/// and all stop once one finds a candidate passing the base-2 tests (Fermat
/// on `q`, then Pocklington's criterion, which makes `p` prime if `q` is);
/// `q` is then confirmed with at least [`MR_ROUNDS`] Miller-Rabin rounds
/// split over the same number of threads. `progress` is called, from worker
/// threads, with the number of candidates that survived sieving and were
/// put to an exponentiation so far; it should return quickly.
///
/// Fails with a usage error when [`validate_search`] does.
pub fn generate_safe_prime(
    bits: u64,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> anyhow::Result<BigUint> {
    validate_search(bits, threads)?;
    let sieve = Sieve::get();
    let tried = AtomicU64::new(0);
    loop {
        let stop = AtomicBool::new(false);
        let found = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    if let Some(prime) = search(bits, sieve, &stop, &tried, progress) {
                        stop.store(true, Ordering::Relaxed);
                        let mut slot = found.lock().unwrap_or_else(|poison| poison.into_inner());
                        slot.get_or_insert(prime);
                    }
                });
            }
        });
        let prime = found
            .into_inner()
            .unwrap_or_else(|poison| poison.into_inner());
        let prime = prime.context("safe prime search ended without a result")?;
        // The base-2 tests leave q a probable prime; confirm it with random
        // bases, spread over the same threads. A failure here is a base-2
        // pseudoprime, rare enough that searching afresh is simplest.
        if miller_rabin_parallel(&(&prime >> 1), MR_ROUNDS, threads) {
            return Ok(prime);
        }
    }
}

fn miller_rabin_parallel(n: &BigUint, rounds: usize, threads: usize) -> bool {
    let per_thread = rounds.div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| miller_rabin(n, per_thread)))
            .collect();
        workers.into_iter().all(|worker| {
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

/// Whether `p` is a safe prime: `p` and `(p - 1) / 2` both pass
/// [`MR_ROUNDS`] Miller-Rabin rounds with random bases.
pub fn is_safe_prime(p: &BigUint) -> bool {
    if p < &BigUint::from(5u32) || p.is_even() {
        return false;
    }
    let q: BigUint = p >> 1;
    is_probable_prime(&q, MR_ROUNDS) && is_probable_prime(p, MR_ROUNDS)
}

/// Whether `n` is probably prime: trial division by small primes, then
/// `rounds` Miller-Rabin rounds with bases drawn from the thread-local
/// CSPRNG. A prime always passes; a composite passes with probability at
/// most 4^-rounds.
pub fn is_probable_prime(n: &BigUint, rounds: usize) -> bool {
    let small: &[u32] = &[2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47];
    for &divisor in small {
        if (n % divisor).is_zero() {
            return n == &BigUint::from(divisor);
        }
    }
    if n < &BigUint::from(53u32 * 53) {
        return n > &BigUint::one();
    }
    miller_rabin(n, rounds)
}

fn miller_rabin(n: &BigUint, rounds: usize) -> bool {
    let one = BigUint::one();
    let n_minus_one = n - 1u32;
    let shift = n_minus_one.trailing_zeros().expect("n - 1 is not zero");
    let odd_part = &n_minus_one >> shift;
    let two = BigUint::from(2u32);
    let mut rng = rand::thread_rng();

    'round: for _ in 0..rounds {
        let base = rng.gen_biguint_range(&two, &n_minus_one);
        let mut x = base.modpow(&odd_part, n);
        if x == one || x == n_minus_one {
            continue;
        }
        for _ in 1..shift {
            x = (&x * &x) % n;
            if x == n_minus_one {
                continue 'round;
            }
            if x == one {
                return false;
            }
        }
        return false;
    }
    true
}

fn ffdhe2048_prime() -> &'static BigUint {
    static PRIME: OnceLock<BigUint> = OnceLock::new();
    PRIME.get_or_init(|| {
        BigUint::parse_bytes(FFDHE2048_PRIME_HEX.as_bytes(), 16).expect("constant is hex")
    })
}

/// Sieve bound: primes below this knock out candidates before any
/// exponentiation. Both `q` and `2q + 1` are sieved, so the share of
/// candidates that reach one falls with the square of the bound's logarithm:
/// 2^22 leaves about 1.1% where OpenSSL's 2048-prime table leaves about 2.6%.
/// The price is one pass over the table per random start (about 0.1 s for
/// 2048 bits), which a larger bound would make outgrow its savings.
const SIEVE_LIMIT: u32 = 1 << 22;

/// Candidates per sieve window (bits of a bitmap that fits a core's cache).
const WINDOW: u32 = 1 << 17;

/// `q` runs over `q0 + STEP * k`, so it stays `≡ 11 (mod 12)` and
/// `p = 2q + 1 ≡ 23 (mod 24)`.
const STEP: u32 = 12;

/// Odd primes from 5 up to [`SIEVE_LIMIT`], with the facts each window needs.
struct Sieve {
    primes: Vec<u32>,
    /// `STEP^-1 mod r`, to turn a residue of `q` into an offset in `k`.
    step_inverse: Vec<u32>,
    /// `STEP * WINDOW mod r`, to move residues from one window to the next.
    window_shift: Vec<u32>,
}

impl Sieve {
    fn get() -> &'static Sieve {
        static SIEVE: OnceLock<Sieve> = OnceLock::new();
        SIEVE.get_or_init(Sieve::build)
    }

    fn build() -> Sieve {
        let limit = SIEVE_LIMIT as usize;
        let mut composite = vec![false; limit];
        let mut primes = Vec::new();
        for n in 2..limit {
            if composite[n] {
                continue;
            }
            if n >= 5 {
                primes.push(n as u32);
            }
            for multiple in (n * n..limit).step_by(n) {
                composite[multiple] = true;
            }
        }
        let step_inverse = primes
            .iter()
            .map(|&r| pow_mod(u64::from(STEP), u64::from(r) - 2, u64::from(r)) as u32)
            .collect();
        let window_shift = primes
            .iter()
            .map(|&r| ((u64::from(STEP) * u64::from(WINDOW)) % u64::from(r)) as u32)
            .collect();
        Sieve {
            primes,
            step_inverse,
            window_shift,
        }
    }
}

fn pow_mod(mut base: u64, mut exponent: u64, modulus: u64) -> u64 {
    let mut result = 1;
    base %= modulus;
    while exponent > 0 {
        if exponent & 1 == 1 {
            result = result * base % modulus;
        }
        base = base * base % modulus;
        exponent >>= 1;
    }
    result
}

/// One worker: draws a random start, sieves windows after it and tests the
/// survivors until it finds a safe prime or `stop` is set.
fn search(
    bits: u64,
    sieve: &Sieve,
    stop: &AtomicBool,
    tried: &AtomicU64,
    progress: &(dyn Fn(u64) + Sync),
) -> Option<BigUint> {
    let mut rng = rand::thread_rng();
    let mut bitmap = vec![0u64; WINDOW as usize / 64];
    'start: while !stop.load(Ordering::Relaxed) {
        let mut base = random_start(bits, &mut rng);
        let mut residues = residues_of(&base, &sieve.primes);
        loop {
            mark_window(sieve, &residues, &mut bitmap);
            for (word_index, &word) in bitmap.iter().enumerate() {
                let mut free = !word;
                while free != 0 {
                    let k = word_index as u32 * 64 + free.trailing_zeros();
                    free &= free - 1;
                    if stop.load(Ordering::Relaxed) {
                        return None;
                    }
                    let q = &base + STEP * k;
                    let p: BigUint = (&q << 1) + 1u32;
                    if p.bits() != bits {
                        continue 'start;
                    }
                    progress(tried.fetch_add(1, Ordering::Relaxed) + 1);
                    if passes_base_two_tests(&q, &p) {
                        return Some(p);
                    }
                }
            }
            base += STEP * WINDOW;
            for ((residue, &r), &shift) in residues
                .iter_mut()
                .zip(&sieve.primes)
                .zip(&sieve.window_shift)
            {
                *residue = ((u64::from(*residue) + u64::from(shift)) % u64::from(r)) as u32;
            }
        }
    }
    None
}

/// A random `q0 ≡ 11 (mod 12)` of `bits - 1` bits whose top two bits are
/// set, so `2 * q0 + 1` has exactly `bits` bits with its top two set.
fn random_start(bits: u64, rng: &mut impl Rng) -> BigUint {
    let mut q = rng.gen_biguint(bits - 1);
    q.set_bit(bits - 2, true);
    q.set_bit(bits - 3, true);
    let remainder = (&q % STEP).iter_u32_digits().next().unwrap_or(0);
    q += (11 + STEP - remainder) % STEP;
    q
}

/// `value mod r` for every `r`, folding 32 bits at a time so the arithmetic
/// stays in `u64` (every `r` is below 2^32).
fn residues_of(value: &BigUint, primes: &[u32]) -> Vec<u32> {
    let digits: Vec<u32> = value.iter_u32_digits().collect();
    primes
        .iter()
        .map(|&r| {
            let r = u64::from(r);
            digits
                .iter()
                .rev()
                .fold(0u64, |rem, &digit| ((rem << 32) | u64::from(digit)) % r) as u32
        })
        .collect()
}

/// Sets bit `k` of `bitmap` when `q = base + STEP * k` or `2q + 1` has a
/// small prime factor; `residues[i]` is `base mod primes[i]`.
fn mark_window(sieve: &Sieve, residues: &[u32], bitmap: &mut [u64]) {
    bitmap.fill(0);
    let window = u64::from(WINDOW);
    for ((&r, &inverse), &residue) in sieve.primes.iter().zip(&sieve.step_inverse).zip(residues) {
        let (r, inverse, residue) = (u64::from(r), u64::from(inverse), u64::from(residue));
        // q ≡ 0 kills q; q ≡ (r - 1) / 2 makes 2q + 1 ≡ 0 and kills p.
        for target in [0, (r - 1) / 2] {
            let mut k = (target + r - residue) % r * inverse % r;
            while k < window {
                bitmap[(k / 64) as usize] |= 1 << (k % 64);
                k += r;
            }
        }
    }
}

/// The exponentiation tests for a sieved candidate, cheapest rejection first.
/// Passing means `p` is prime if `q` is; the caller then runs Miller-Rabin
/// on `q`.
fn passes_base_two_tests(q: &BigUint, p: &BigUint) -> bool {
    // Fermat base 2 on q rejects nearly every composite in one exponentiation.
    if !TwoPower::new(q).is_one(&(q - 1u32)) {
        return false;
    }
    // If q is prime then p = 2q + 1 is prime exactly when 2^q ≡ ±1 (mod p)
    // (Pocklington with the factor q > sqrt(p), since gcd(2^2 - 1, p) = 1
    // for p ≡ 2 mod 3); p ≡ 7 (mod 8) makes 2 a square, so the value is 1.
    TwoPower::new(p).is_one(q)
}

/// `2^e mod m` for an odd `m`, in Montgomery form on fixed-size limbs.
///
/// Candidate testing is nearly all exponentiations with base 2, so this
/// skips num-bigint's general `modpow` (which allocates on every product):
/// it squares with a dedicated squaring, and multiplying by the base becomes
/// a doubling. About three times faster for 2048-bit moduli.
struct TwoPower {
    modulus: Vec<u64>,
    /// `-modulus^-1 mod 2^64`.
    neg_inverse: u64,
    /// `R mod modulus` with `R = 2^(64 * limbs)`: 1 in Montgomery form.
    one: Vec<u64>,
    /// `2R mod modulus`: 2 in Montgomery form.
    two: Vec<u64>,
}

impl TwoPower {
    fn new(modulus: &BigUint) -> TwoPower {
        debug_assert!(modulus.is_odd() && modulus.bits() > 2);
        let limbs = modulus.to_u64_digits();
        let r_bits = 64 * limbs.len() as u64;
        let fixed = |value: BigUint| {
            let mut digits = value.to_u64_digits();
            digits.resize(limbs.len(), 0);
            digits
        };
        // Newton's iteration doubles the correct low bits of m^-1 each step.
        let mut inverse: u64 = 1;
        for _ in 0..6 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(limbs[0].wrapping_mul(inverse)));
        }
        TwoPower {
            one: fixed((BigUint::one() << r_bits) % modulus),
            two: fixed((BigUint::one() << (r_bits + 1)) % modulus),
            neg_inverse: inverse.wrapping_neg(),
            modulus: limbs,
        }
    }

    /// Whether `2^exponent ≡ 1 (mod modulus)`; `exponent` must be positive.
    fn is_one(&self, exponent: &BigUint) -> bool {
        self.power(exponent) == self.one
    }

    /// `2^exponent * R mod modulus` (Montgomery form); `exponent` must be
    /// positive.
    fn power(&self, exponent: &BigUint) -> Vec<u64> {
        let n = self.modulus.len();
        let mut value = self.two.clone();
        let mut wide = vec![0u64; 2 * n];
        for bit in (0..exponent.bits() - 1).rev() {
            self.square(&mut value, &mut wide);
            if exponent.bit(bit) {
                self.double(&mut value);
            }
        }
        value
    }

    /// `value = value^2 / R mod modulus`, fully reduced.
    fn square(&self, value: &mut [u64], wide: &mut [u64]) {
        let n = value.len();
        let m = &self.modulus;
        wide.fill(0);
        // Cross products a[i] * a[j] for i < j, then doubled.
        for i in 0..n {
            wide[i + n] = multiply_add(&mut wide[2 * i + 1..i + n], &value[i + 1..], value[i]);
        }
        let mut top = 0;
        for limb in wide.iter_mut() {
            let next = *limb >> 63;
            *limb = (*limb << 1) | top;
            top = next;
        }
        // Squares on the diagonal.
        let mut carry: u128 = 0;
        for (pair, &limb) in wide.chunks_exact_mut(2).zip(value.iter()) {
            let square = u128::from(limb) * u128::from(limb);
            let low = u128::from(pair[0]) + (square as u64 as u128) + carry;
            pair[0] = low as u64;
            let high = u128::from(pair[1]) + (square >> 64) + (low >> 64);
            pair[1] = high as u64;
            carry = high >> 64;
        }
        // Montgomery reduction: clear the low n limbs one at a time.
        let mut overflow = 0u64;
        for i in 0..n {
            let factor = wide[i].wrapping_mul(self.neg_inverse);
            let mut carry = multiply_add(&mut wide[i..i + n], m, factor);
            for limb in &mut wide[i + n..] {
                if carry == 0 {
                    break;
                }
                let (sum, overflowed) = limb.overflowing_add(carry);
                *limb = sum;
                carry = u64::from(overflowed);
            }
            overflow += carry;
        }
        value.copy_from_slice(&wide[n..]);
        if overflow != 0 || !is_below(value, m) {
            subtract_in_place(value, m);
        }
    }

    /// `value = 2 * value mod modulus`, fully reduced.
    fn double(&self, value: &mut [u64]) {
        let mut top = 0;
        for limb in value.iter_mut() {
            let next = *limb >> 63;
            *limb = (*limb << 1) | top;
            top = next;
        }
        if top != 0 || !is_below(value, &self.modulus) {
            subtract_in_place(value, &self.modulus);
        }
    }
}

/// `acc += source * factor` over `acc.len()` limbs; returns the carry out.
/// `acc` and `source` must have the same length.
fn multiply_add(acc: &mut [u64], source: &[u64], factor: u64) -> u64 {
    debug_assert_eq!(acc.len(), source.len());
    let factor = u128::from(factor);
    let mut carry = 0u64;
    for (limb, &word) in acc.iter_mut().zip(source) {
        // (2^64 - 1)^2 + 2 (2^64 - 1) = 2^128 - 1: never overflows.
        let sum = u128::from(*limb) + factor * u128::from(word) + u128::from(carry);
        *limb = sum as u64;
        carry = (sum >> 64) as u64;
    }
    carry
}

/// Whether `a < b`, both little-endian limbs of equal length.
fn is_below(a: &[u64], b: &[u64]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` modulo `2^(64 * len)`.
fn subtract_in_place(a: &mut [u64], b: &[u64]) {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (difference, first) = x.overflowing_sub(y);
        let (difference, second) = difference.overflowing_sub(u64::from(borrow));
        *x = difference;
        borrow = first || second;
    }
}

fn push_der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

fn push_der_integer(out: &mut Vec<u8>, value: &BigUint) {
    let mut bytes = value.to_bytes_be();
    // DER INTEGERs are signed: a set top bit needs a zero byte in front.
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    out.push(0x02);
    push_der_length(out, bytes.len());
    out.extend_from_slice(&bytes);
}

/// Splits one DER element off `input`: its tag, contents and what follows.
fn read_der_element(input: &[u8]) -> anyhow::Result<(u8, &[u8], &[u8])> {
    let [tag, first, rest @ ..] = input else {
        anyhow::bail!("DER element is truncated");
    };
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(*first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            anyhow::bail!("DER length is malformed");
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        anyhow::bail!(
            "DER element claims {len} bytes but only {} remain",
            rest.len()
        );
    }
    Ok((*tag, &rest[..len], &rest[len..]))
}

fn read_der_integer<'a>(input: &'a [u8], name: &str) -> anyhow::Result<(BigUint, &'a [u8])> {
    let (tag, contents, rest) = read_der_element(input)?;
    if tag != 0x02 {
        anyhow::bail!("expected INTEGER {name}, found tag 0x{tag:02x}");
    }
    match contents.first() {
        None => anyhow::bail!("INTEGER {name} is empty"),
        Some(b) if b & 0x80 != 0 => anyhow::bail!("INTEGER {name} is negative"),
        Some(_) => Ok((BigUint::from_bytes_be(contents), rest)),
    }
}

fn parse_der(der: &[u8]) -> anyhow::Result<DhParams> {
    let (tag, contents, trailing) = read_der_element(der)?;
    if tag != 0x30 {
        anyhow::bail!("expected a SEQUENCE, found tag 0x{tag:02x}");
    }
    if !trailing.is_empty() {
        anyhow::bail!("{} bytes follow the SEQUENCE", trailing.len());
    }
    let (prime, rest) = read_der_integer(contents, "prime")?;
    let (generator, rest) = read_der_integer(rest, "generator")?;
    // PKCS#3 allows an optional privateValueLength; it does not affect IBKR.
    let rest = if rest.is_empty() {
        rest
    } else {
        read_der_integer(rest, "privateValueLength")?.1
    };
    if !rest.is_empty() {
        anyhow::bail!("unexpected fields after the DH parameters");
    }
    DhParams::new(prime, generator)
}

fn first_pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = text[start..].find("-----")?;
    Some(&text[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::openssl_present;
    use std::process::Command;
    use std::sync::atomic::AtomicU64;

    /// What `openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048`
    /// writes (OpenSSL 3.0).
    const OPENSSL_FFDHE2048_PEM: &str = "-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
";

    /// The prime `openssl dhparam -text` prints, as one lowercase hex string.
    fn openssl_printed_prime(path: &Path) -> String {
        let output = Command::new("openssl")
            .args(["dhparam", "-noout", "-text", "-in"])
            .arg(path)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        // OpenSSL 3 labels the prime `P:`, 1.1 `prime:`; the generator follows.
        let start = text
            .find("P:")
            .or_else(|| text.find("prime:"))
            .expect("prime label");
        let after = &text[start..];
        let after = &after[after.find(':').unwrap() + 1..];
        let end = after
            .find("G:")
            .or_else(|| after.find("generator:"))
            .expect("generator label");
        let hex: String = after[..end]
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect();
        hex.trim_start_matches('0').to_lowercase()
    }

    fn assert_usage(err: &anyhow::Error) {
        assert_eq!(error::exit_kind(err), error::ExitKind::Usage, "{err:#}");
    }

    #[test]
    fn ffdhe2048_is_a_2048_bit_safe_prime_with_generator_two() {
        let params = DhParams::ffdhe2048();
        assert_eq!(params.bits(), 2048);
        assert_eq!(params.generator(), &BigUint::from(2u32));
        assert_eq!(params.prime() % 24u32, BigUint::from(23u32));
        assert!(is_safe_prime(params.prime()));
        assert_eq!(params.oauth_prime_hex(), FFDHE2048_PRIME_HEX.to_lowercase());
    }

    #[test]
    fn ffdhe2048_pem_matches_what_openssl_writes() {
        assert_eq!(DhParams::ffdhe2048().to_pem(), OPENSSL_FFDHE2048_PEM);
        assert_eq!(
            DhParams::from_pem(OPENSSL_FFDHE2048_PEM).unwrap(),
            DhParams::ffdhe2048()
        );
    }

    #[test]
    fn openssl_dhparam_check_accepts_our_ffdhe2048_pem() {
        if !openssl_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dhparam.pem");
        std::fs::write(&path, DhParams::ffdhe2048().to_pem()).unwrap();
        let output = Command::new("openssl")
            .args(["dhparam", "-check", "-noout", "-in"])
            .arg(&path)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&output.stderr).to_string()
            + &String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{report}");
        assert!(report.contains("appear to be ok"), "{report}");
    }

    #[test]
    fn small_safe_primes_have_the_openssl_shape() {
        for (bits, threads) in [(64, 1), (96, 2), (128, 1), (256, 2), (512, 2)] {
            let calls = AtomicU64::new(0);
            let p = generate_safe_prime(bits, threads, &|tried| {
                calls.fetch_max(tried, Ordering::Relaxed);
            })
            .unwrap();
            assert_eq!(p.bits(), bits, "{p:x}");
            assert!(p.bit(bits - 2), "second bit of {p:x} is clear");
            assert_eq!(&p % 24u32, BigUint::from(23u32), "{p:x}");
            assert!(is_safe_prime(&p), "{p:x} is not a safe prime");
            assert!(
                calls.load(Ordering::Relaxed) >= 1,
                "progress never reported"
            );
        }
    }

    #[test]
    fn base_two_powers_match_modpow() {
        let mut rng = rand::thread_rng();
        let two = BigUint::from(2u32);
        for bits in [3, 63, 64, 65, 127, 128, 500, 1024, 2047, 2048] {
            for _ in 0..8 {
                let mut modulus = rng.gen_biguint(bits);
                modulus.set_bit(bits - 1, true);
                modulus.set_bit(0, true);
                let exponent = rng.gen_biguint(bits + 3) + 1u32;
                let power = TwoPower::new(&modulus).power(&exponent);
                // Montgomery form is value * R mod m, with R = 2^(64 * limbs).
                let r = BigUint::one() << (64 * power.len() as u64);
                let expected = two.modpow(&exponent, &modulus) * r % &modulus;
                assert_eq!(
                    BigUint::from_slice(&to_u32_digits(&power)),
                    expected,
                    "{modulus:x}"
                );
            }
        }
        // Fermat's little theorem on a known prime, and a composite failing it.
        let prime = DhParams::ffdhe2048().prime().clone();
        assert!(TwoPower::new(&prime).is_one(&(&prime - 1u32)));
        let composite = &prime * 3u32;
        assert!(!TwoPower::new(&composite).is_one(&(&composite - 1u32)));
    }

    fn to_u32_digits(limbs: &[u64]) -> Vec<u32> {
        limbs
            .iter()
            .flat_map(|&limb| [limb as u32, (limb >> 32) as u32])
            .collect()
    }

    #[test]
    fn is_safe_prime_rejects_primes_that_are_not_safe_and_composites() {
        // 23 = 2 * 11 + 1 is safe; 29 is prime but 14 is not; 2^61 - 1 is a
        // Mersenne prime whose (p - 1) / 2 is even.
        assert!(is_safe_prime(&BigUint::from(23u32)));
        assert!(!is_safe_prime(&BigUint::from(29u32)));
        assert!(!is_safe_prime(&BigUint::from((1u64 << 61) - 1)));
        let prime = DhParams::ffdhe2048().prime().clone();
        assert!(!is_safe_prime(&(&prime * 3u32)));
        assert!(!is_safe_prime(&(&prime + 2u32)));
        // 3215031751 is a strong pseudoprime to bases 2, 3, 5 and 7.
        assert!(!is_probable_prime(&BigUint::from(3_215_031_751u64), 16));
    }

    #[test]
    fn generated_params_survive_a_pem_round_trip() {
        let prime = generate_safe_prime(160, 2, &|_| {}).unwrap();
        let params = DhParams::with_generator_two(prime).unwrap();
        let pem = params.to_pem();
        assert!(pem.starts_with("-----BEGIN DH PARAMETERS-----\n"));
        assert!(pem.lines().all(|line| line.len() <= 64));
        assert_eq!(DhParams::from_pem(&pem).unwrap(), params);
        // Text around the block, as `openssl dhparam -text` leaves, is ignored.
        let wrapped = format!("    DH Parameters: (160 bit)\n{pem}trailing words\n");
        assert_eq!(DhParams::from_pem(&wrapped).unwrap(), params);
    }

    #[test]
    fn decodes_a_pem_that_openssl_dhparam_wrote() {
        if !openssl_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dhparam.pem");
        let status = Command::new("openssl")
            .args(["dhparam", "-out"])
            .arg(&path)
            .arg("512")
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let hex = read_oauth_prime_hex(&path).unwrap();
        assert_eq!(hex, openssl_printed_prime(&path));
        let params = read_params(&path).unwrap();
        assert_eq!(params.bits(), 512);
        assert!(is_safe_prime(params.prime()));
        // Re-encoding gives back the very file openssl wrote.
        assert_eq!(params.to_pem(), std::fs::read_to_string(&path).unwrap());
    }

    #[test]
    fn oauth_hex_is_lowercase_without_leading_zeros_or_colons() {
        let prime = BigUint::from(0x0abc_def1_u64);
        assert_eq!(oauth_prime_hex(&prime), "abcdef1");
        let hex = DhParams::ffdhe2048().oauth_prime_hex();
        assert_eq!(hex.len(), 512);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
    }

    #[test]
    fn garbage_and_other_pem_files_are_refused_with_what_was_found() {
        let cases = [
            ("", "no `-----BEGIN DH PARAMETERS-----` line"),
            ("hello", "no `-----BEGIN DH PARAMETERS-----` line"),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "`PUBLIC KEY`",
            ),
            ("-----BEGIN X9.42 DH PARAMETERS-----\n", "X9.42"),
            ("-----BEGIN DH PARAMETERS-----\nMEYC\n", "no matching"),
            (
                "-----BEGIN DH PARAMETERS-----\n!!!\n-----END DH PARAMETERS-----",
                "base64",
            ),
            (
                "-----BEGIN DH PARAMETERS-----\nMAA=\n-----END DH PARAMETERS-----",
                "PKCS#3",
            ),
            (
                "-----BEGIN DH PARAMETERS-----\nAgEC\n-----END DH PARAMETERS-----",
                "SEQUENCE",
            ),
        ];
        for (text, expected) in cases {
            let err = DhParams::from_pem(text).unwrap_err();
            assert!(
                format!("{err:#}").contains(expected),
                "{text:?} gave {err:#}"
            );
        }
    }

    #[test]
    fn malformed_der_fields_are_refused() {
        let wrap = |der: &[u8]| format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", STANDARD.encode(der));
        let odd_prime = {
            let mut der = Vec::new();
            push_der_integer(&mut der, &BigUint::from((1u64 << 63) + 1));
            der
        };
        let sequence = |body: &[u8]| {
            let mut der = vec![0x30];
            push_der_length(&mut der, body.len());
            der.extend_from_slice(body);
            der
        };
        let negative = sequence(&[0x02, 0x01, 0x80, 0x02, 0x01, 0x02]);
        let short = sequence(&[0x02, 0x09, 0x00]);
        let mut even = Vec::new();
        push_der_integer(&mut even, &BigUint::from(1u64 << 63));
        even.extend_from_slice(&[0x02, 0x01, 0x02]);
        let mut big_generator = odd_prime.clone();
        push_der_integer(&mut big_generator, &BigUint::from(u64::MAX));
        let mut extra = odd_prime.clone();
        extra.extend_from_slice(&[0x02, 0x01, 0x02, 0x02, 0x01, 0x10, 0x04, 0x00]);
        for (der, expected) in [
            (negative, "negative"),
            (short, "claims 9 bytes"),
            (sequence(&even), "even"),
            (sequence(&big_generator), "generator"),
            (sequence(&extra), "unexpected fields"),
            (
                [sequence(&odd_prime), vec![0]].concat(),
                "follow the SEQUENCE",
            ),
        ] {
            let err = DhParams::from_pem(&wrap(&der)).unwrap_err();
            assert!(
                format!("{err:#}").contains(expected),
                "expected {expected:?}: {err:#}"
            );
        }
        // A privateValueLength third field is allowed and dropped.
        let mut with_length = odd_prime.clone();
        with_length.extend_from_slice(&[0x02, 0x01, 0x02, 0x02, 0x01, 0x10]);
        let params = DhParams::from_pem(&wrap(&sequence(&with_length))).unwrap();
        assert_eq!(params.generator(), &BigUint::from(2u32));
    }

    #[test]
    fn reading_files_names_the_file_on_every_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = read_oauth_prime_hex(&missing).unwrap_err();
        assert_usage(&err);
        assert!(err.to_string().contains("missing.pem"), "{err:#}");
        assert!(error::hint(&err).unwrap().contains("keys-gen"));

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, [0xff, 0xfe, 0x00]).unwrap();
        let err = read_oauth_prime_hex(&garbage).unwrap_err();
        assert_usage(&err);
        assert!(format!("{err:#}").contains("garbage.pem"), "{err:#}");

        let generator_five = dir.path().join("g5.pem");
        let params = DhParams::new(DhParams::ffdhe2048().prime().clone(), 5u32.into()).unwrap();
        std::fs::write(&generator_five, params.to_pem()).unwrap();
        let err = read_oauth_prime_hex(&generator_five).unwrap_err();
        assert_usage(&err);
        assert!(err.to_string().contains("generator 5"), "{err:#}");

        let good = dir.path().join("dhparam.pem");
        std::fs::write(&good, DhParams::ffdhe2048().to_pem()).unwrap();
        assert_eq!(
            read_oauth_prime_hex(&good).unwrap(),
            FFDHE2048_PRIME_HEX.to_lowercase()
        );
    }

    #[test]
    fn out_of_range_requests_are_usage_errors() {
        for (bits, threads) in [(MIN_BITS - 1, 1), (MAX_BITS + 1, 1), (DEFAULT_BITS, 0)] {
            let err = generate_safe_prime(bits, threads, &|_| {}).unwrap_err();
            assert_usage(&err);
        }
        assert!(default_threads() >= 1);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Odd numbers of [`MIN_BITS`] to 2048 bits (primality does not
        /// matter to the encodings), half with the top bit of their first
        /// byte set, and a generator below the prime minus one.
        fn params() -> impl Strategy<Value = DhParams> {
            (
                proptest::collection::vec(any::<u8>(), 8..=256),
                any::<bool>(),
                2u32..=5,
            )
                .prop_filter_map("too small", |(mut bytes, high, generator)| {
                    bytes[0] = if high {
                        bytes[0] | 0x80
                    } else {
                        bytes[0] & 0x7f
                    };
                    let last = bytes.len() - 1;
                    bytes[last] |= 1;
                    let prime = BigUint::from_bytes_be(&bytes);
                    DhParams::new(prime, BigUint::from(generator)).ok()
                })
        }

        /// The contents of the DER INTEGER starting at `der[at]`, and the
        /// offset after it.
        fn integer_at(der: &[u8], at: usize) -> (&[u8], usize) {
            assert_eq!(der[at], 0x02, "an INTEGER tag");
            let first = usize::from(der[at + 1]);
            let (len, start) = if first < 0x80 {
                (first, at + 2)
            } else {
                let count = first & 0x7f;
                let len = der[at + 2..at + 2 + count]
                    .iter()
                    .fold(0, |len, &b| (len << 8) | usize::from(b));
                (len, at + 2 + count)
            };
            (&der[start..start + len], start + len)
        }

        proptest! {
            #[test]
            fn pem_round_trips(params in params()) {
                prop_assert_eq!(DhParams::from_pem(&params.to_pem()).unwrap(), params);
            }

            #[test]
            fn der_integers_carry_a_zero_byte_exactly_when_the_top_bit_is_set(
                params in params(),
            ) {
                let pem = params.to_pem();
                let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
                let der = STANDARD.decode(body).unwrap();
                let header = if der[1] < 0x80 { 2 } else { 2 + usize::from(der[1] & 0x7f) };
                let (prime, next) = integer_at(&der, header);
                let (generator, _) = integer_at(&der, next);
                for (bytes, value) in [(prime, params.prime()), (generator, params.generator())] {
                    let minimal = value.to_bytes_be();
                    let padded = minimal[0] >= 0x80;
                    prop_assert_eq!(bytes.len(), minimal.len() + usize::from(padded));
                    prop_assert_eq!(bytes[0] == 0, padded);
                    prop_assert_eq!(BigUint::from_bytes_be(bytes), value.clone());
                }
            }

            #[test]
            fn oauth_hex_is_the_prime_without_leading_zeros(params in params()) {
                let hex = params.oauth_prime_hex();
                prop_assert!(!hex.starts_with('0'));
                prop_assert!(hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
                let parsed = BigUint::parse_bytes(hex.as_bytes(), 16).unwrap();
                prop_assert_eq!(&parsed, params.prime());
            }
        }
    }
}
