//! A rough reading of RUN shell commands: enough to tell which simple commands a RUN runs.
//!
//! This is not a shell parser. It splits on the list and pipe operators (`&&`, `||`, `;`,
//! `|`, `&`, newlines) outside quotes, drops grouping characters, and splits each simple
//! command into words with quotes removed. Command substitutions and variables stay as text.

/// The simple commands of a shell command line, each as its words (quotes removed).
pub(crate) fn simple_commands(script: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    let end_word = |word: &mut String, words: &mut Vec<String>, in_word: &mut bool| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = chars.next() {
                                word.push(e);
                            }
                        }
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                if let Some(e) = chars.next() {
                    if e != '\n' {
                        in_word = true;
                        word.push(e);
                    }
                }
            }
            '#' if !in_word => {
                // A comment runs to the end of the line.
                for q in chars.by_ref() {
                    if q == '\n' {
                        break;
                    }
                }
                end_word(&mut word, &mut words, &mut in_word);
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            ';' | '&' | '|' | '\n' => {
                end_word(&mut word, &mut words, &mut in_word);
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            '(' | ')' => end_word(&mut word, &mut words, &mut in_word),
            '{' | '}' if !in_word => {}
            c if c.is_whitespace() => end_word(&mut word, &mut words, &mut in_word),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut word, &mut words, &mut in_word);
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

/// True when the shell command is a single `cd` and nothing else (`cd /app`, `cd /app;`).
pub(crate) fn is_cd_only(script: &str) -> bool {
    let text = script.trim().trim_end_matches(';').trim();
    if text.contains(['&', '|', ';', '\n', '<', '>', '(', ')', '`', '#']) {
        return false;
    }
    let commands = simple_commands(text);
    matches!(commands.as_slice(), [words] if words.first().is_some_and(|w| w == "cd"))
}

/// An `apt-get`/`apt` subcommand found in a simple command (`install`, `update`, ...).
pub(crate) fn apt_subcommand(words: &[String]) -> Option<&str> {
    let mut rest = words.iter().map(String::as_str).skip_while(|w| {
        // Skip shell keywords and wrappers (`then apt-get ...`, `sudo apt-get ...`) and
        // leading `NAME=value` assignments.
        matches!(
            *w,
            "sudo" | "env" | "exec" | "time" | "!" | "then" | "else" | "do" | "if" | "while"
        ) || is_assignment(w)
    });
    let command = rest.next()?;
    let base = command.rsplit('/').next().unwrap_or(command);
    if base != "apt-get" && base != "apt" {
        return None;
    }
    let mut takes_value = false;
    for word in rest {
        if takes_value {
            takes_value = false;
            continue;
        }
        if let Some(option) = word.strip_prefix('-') {
            // Options with a separate value: -o Foo=bar, -c file, -t release.
            takes_value = matches!(option, "o" | "c" | "t");
            continue;
        }
        return Some(word);
    }
    None
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// True when a simple command removes `/var/lib/apt/lists` (or its contents).
pub(crate) fn removes_apt_lists(words: &[String]) -> bool {
    let mut rest = words.iter().skip_while(|w| *w == "sudo");
    let is_rm = rest
        .next()
        .is_some_and(|c| c.rsplit('/').next() == Some("rm"));
    is_rm && rest.any(|w| w.trim_end_matches('/').starts_with("/var/lib/apt/lists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Vec<String>> {
        simple_commands(s)
    }

    #[test]
    fn splits_on_operators_outside_quotes() {
        assert_eq!(
            words("apt-get update && apt-get install -y 'a b' \"c;d\" | tee x; echo ok # hi"),
            vec![
                vec!["apt-get", "update"],
                vec!["apt-get", "install", "-y", "a b", "c;d"],
                vec!["tee", "x"],
                vec!["echo", "ok"],
            ]
        );
        assert_eq!(
            words("(cd /x) || true"),
            vec![vec!["cd", "/x"], vec!["true"]]
        );
    }

    #[test]
    fn cd_only() {
        assert!(is_cd_only("cd /app"));
        assert!(is_cd_only("  cd /app ; "));
        assert!(is_cd_only("cd"));
        assert!(!is_cd_only("cd /app && make"));
        assert!(!is_cd_only("cd /app; make"));
        assert!(!is_cd_only("cdx /app"));
        assert!(!is_cd_only("echo cd"));
        assert!(!is_cd_only("cd $(mktemp -d)"));
    }

    #[test]
    fn apt_subcommands() {
        let sub = |s: &str| {
            simple_commands(s)
                .first()
                .and_then(|w| apt_subcommand(w).map(str::to_string))
        };
        assert_eq!(sub("apt-get install -y x").as_deref(), Some("install"));
        assert_eq!(
            sub("DEBIAN_FRONTEND=noninteractive apt-get -qq -o A=b install x").as_deref(),
            Some("install")
        );
        assert_eq!(sub("sudo /usr/bin/apt update").as_deref(), Some("update"));
        assert_eq!(sub("apt-cache policy"), None);
        assert_eq!(
            simple_commands("if true; then apt-get install -y x; fi")
                .iter()
                .find_map(|w| apt_subcommand(w)),
            Some("install")
        );
        assert_eq!(sub("echo apt-get install"), None);
    }

    #[test]
    fn apt_lists_removal() {
        let cmd = |s: &str| simple_commands(s).remove(0);
        assert!(removes_apt_lists(&cmd("rm -rf /var/lib/apt/lists/*")));
        assert!(removes_apt_lists(&cmd("rm -fr /var/lib/apt/lists")));
        assert!(!removes_apt_lists(&cmd("ls /var/lib/apt/lists")));
        assert!(!removes_apt_lists(&cmd("rm -rf /var/cache/apt")));
    }
}
