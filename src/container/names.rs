//! Docker-style generated container names (`adjective_surname`, e.g. `patient_noether`) for
//! containers run without `--name`.
//!
//! The lists are rbuild's own: 50 adjectives and 50 surnames of scientists, 2500 names. A
//! name is claimed by recording the container (the store refuses a name in use, atomically),
//! so a collision, with another container or with a concurrent `run`, is retried with a new
//! pick; after a few collisions a digit is appended, as docker does.

use crate::store::StoreError;

const ADJECTIVES: [&str; 50] = [
    "agile", "amused", "bold", "brave", "bright", "calm", "careful", "cheerful", "clever",
    "curious", "daring", "eager", "earnest", "elegant", "fearless", "fond", "gentle", "glad",
    "graceful", "happy", "hardy", "honest", "humble", "jolly", "keen", "kind", "lively", "loyal",
    "lucid", "merry", "mindful", "modest", "nimble", "noble", "patient", "placid", "polite",
    "proud", "quiet", "quick", "serene", "sharp", "steady", "sturdy", "swift", "tender", "tidy",
    "upbeat", "vivid", "witty",
];

const SURNAMES: [&str; 50] = [
    "ampere",
    "archimedes",
    "avogadro",
    "babbage",
    "bohr",
    "boltzmann",
    "boyle",
    "carson",
    "cavendish",
    "curie",
    "darwin",
    "dirac",
    "euclid",
    "euler",
    "faraday",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goodall",
    "hawking",
    "heisenberg",
    "hertz",
    "hopper",
    "hubble",
    "huygens",
    "johnson",
    "kepler",
    "lamarr",
    "leibniz",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "newton",
    "noether",
    "ohm",
    "pascal",
    "pasteur",
    "planck",
    "ramanujan",
    "riemann",
    "rutherford",
    "sagan",
    "shannon",
    "tesla",
    "turing",
    "volta",
    "wu",
];

/// Collisions after which a digit is appended to the name.
const PLAIN_ATTEMPTS: u32 = 5;
/// Collisions after which [`claim`] gives up (returns the store's conflict).
const MAX_ATTEMPTS: u32 = 20;

/// The name that `random` picks: `adjective_surname`.
pub fn generate(random: u64) -> String {
    let adjective = ADJECTIVES[(random % ADJECTIVES.len() as u64) as usize];
    let surname = SURNAMES[((random >> 32) % SURNAMES.len() as u64) as usize];
    format!("{adjective}_{surname}")
}

/// Picks names with `random` and offers each to `add` until one is not in use (`add`
/// returns [`StoreError::Conflict`] for a name in use); returns the name claimed.
pub fn claim<E: From<StoreError>>(
    mut random: impl FnMut() -> Result<u64, E>,
    mut add: impl FnMut(&str) -> Result<(), StoreError>,
) -> Result<String, E> {
    let mut attempt = 0;
    loop {
        let value = random()?;
        let mut name = generate(value);
        if attempt >= PLAIN_ATTEMPTS {
            name.push_str(&((value >> 16) % 10).to_string());
        }
        match add(&name) {
            Ok(()) => return Ok(name),
            Err(StoreError::Conflict(_)) if attempt + 1 < MAX_ATTEMPTS => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_varied() {
        let mut seen = std::collections::HashSet::new();
        for a in 0..50u64 {
            for s in 0..50u64 {
                let name = generate(a | (s << 32));
                assert!(super::super::create::valid_name(&name), "{name}");
                seen.insert(name);
            }
        }
        assert_eq!(seen.len(), 2500, "every pair is a distinct name");
    }

    #[test]
    fn claim_retries_names_in_use() {
        let taken = [generate(0), generate(1)];
        let mut picks = [0u64, 1, 2].into_iter();
        let mut offered = Vec::new();
        let name = claim::<StoreError>(
            || Ok(picks.next().unwrap()),
            |name| {
                offered.push(name.to_string());
                if taken.iter().any(|t| t == name) {
                    Err(StoreError::Conflict(format!("{name} in use")))
                } else {
                    Ok(())
                }
            },
        )
        .unwrap();
        assert_eq!(name, generate(2));
        assert_eq!(offered, [generate(0), generate(1), generate(2)]);
    }

    #[test]
    fn claim_appends_a_digit_then_gives_up() {
        let mut offered = Vec::new();
        let err = claim::<StoreError>(
            || Ok(7),
            |name| {
                offered.push(name.to_string());
                Err(StoreError::Conflict("in use".into()))
            },
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)));
        assert_eq!(offered.len(), MAX_ATTEMPTS as usize);
        assert_eq!(offered[0], generate(7));
        assert_eq!(
            offered[PLAIN_ATTEMPTS as usize],
            format!("{}0", generate(7))
        );
    }
}
