//! Lexical path normalisation for paths inside images and build contexts (always `/`
//! separated, never looked up on disk): the one owner of Go's `path.Clean` rules, which
//! docker and BuildKit apply to COPY sources, WORKDIR, .dockerignore patterns and layer
//! paths, and of splitting such a path into its names.

/// Go's `path.Clean`: the shortest equivalent path (`.` and `..` resolved lexically, repeated
/// and trailing slashes removed, `..` above a leading `/` dropped, `.` for an empty result).
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// The names in `path` as given (empty names and `.` skipped, `..` kept): for comparing
/// paths that are already clean, without allocating.
pub fn names(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter(|name| !name.is_empty() && *name != ".")
}

/// The names of `path` below the root, after cleaning it as if it started with `/` (so `..`
/// never climbs above the root): `a/./b/../c` and `/../a/c/` both give `["a", "c"]`.
pub fn components(path: &str) -> Vec<String> {
    names(&clean(&format!("/{path}")))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `path.Clean`'s documented rules, case by case.
    #[test]
    fn clean_follows_go_path_clean() {
        for (input, expected) in [
            // Already clean.
            ("", "."),
            (".", "."),
            ("/", "/"),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            // Trailing and repeated slashes.
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("///", "/"),
            ("//abc", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("a//", "a"),
            // `.` elements.
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("./a/./b/", "a/b"),
            // `..` elements.
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("/../abc", "/abc"),
            ("a/../..", ".."),
            // Combinations.
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
        ] {
            assert_eq!(clean(input), expected, "clean({input:?})");
            // Clean is idempotent.
            assert_eq!(clean(expected), expected, "clean({expected:?})");
        }
    }

    #[test]
    fn components_never_climb_above_the_root() {
        for (input, expected) in [
            ("", vec![]),
            (".", vec![]),
            ("/", vec![]),
            ("etc/passwd", vec!["etc", "passwd"]),
            ("/etc//passwd/", vec!["etc", "passwd"]),
            ("a/./b/../c", vec!["a", "c"]),
            ("/../a/c/", vec!["a", "c"]),
            ("../../x", vec!["x"]),
            ("a/b/../../..", vec![]),
        ] {
            assert_eq!(components(input), expected, "components({input:?})");
        }
    }

    #[test]
    fn names_skip_empty_and_dot() {
        assert_eq!(names("./a//b/").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(names(".").count(), 0);
        assert_eq!(names("a/../b").collect::<Vec<_>>(), ["a", "..", "b"]);
    }
}
