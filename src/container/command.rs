//! ENTRYPOINT and CMD combined into the process's argv, as docker does.

/// The argv of the container's process.
///
/// - `entrypoint`: `None` keeps the image's ENTRYPOINT; `Some("")` clears it; `Some(x)`
///   replaces it with the single program `x` (never split, as docker's `--entrypoint`).
/// - Setting `entrypoint` (even to `""`) also drops the image's CMD.
/// - Non-empty `args` (what follows the image name) replace CMD.
/// - The result is ENTRYPOINT followed by CMD. Shell forms are already `["/bin/sh", "-c", …]`
///   in the image config, so nothing is wrapped here.
pub fn combine(
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
    entrypoint: Option<&str>,
    args: &[String],
) -> Vec<String> {
    let entry: Vec<String> = match entrypoint {
        None => image_entrypoint.map(<[String]>::to_vec).unwrap_or_default(),
        Some("") => Vec::new(),
        Some(program) => vec![program.to_string()],
    };
    let cmd: Vec<String> = if !args.is_empty() {
        args.to_vec()
    } else if entrypoint.is_some() {
        Vec::new()
    } else {
        image_cmd.map(<[String]>::to_vec).unwrap_or_default()
    };
    entry.into_iter().chain(cmd).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cmd_only() {
        let cmd = v(&["echo", "hi"]);
        assert_eq!(combine(None, Some(&cmd), None, &[]), cmd);
        assert_eq!(combine(None, Some(&cmd), None, &v(&["ls"])), v(&["ls"]));
    }

    #[test]
    fn entrypoint_and_cmd() {
        let ep = v(&["ip"]);
        let cmd = v(&["-V"]);
        assert_eq!(combine(Some(&ep), Some(&cmd), None, &[]), v(&["ip", "-V"]));
        assert_eq!(
            combine(Some(&ep), Some(&cmd), None, &v(&["-I"])),
            v(&["ip", "-I"])
        );
    }

    #[test]
    fn entrypoint_override_drops_cmd() {
        let ep = v(&["ip"]);
        let cmd = v(&["-V"]);
        assert_eq!(
            combine(Some(&ep), Some(&cmd), Some("env"), &[]),
            v(&["env"])
        );
        assert_eq!(
            combine(Some(&ep), Some(&cmd), Some("echo"), &v(&["a"])),
            v(&["echo", "a"])
        );
        assert!(combine(Some(&ep), Some(&cmd), Some(""), &[]).is_empty());
        assert_eq!(
            combine(Some(&ep), Some(&cmd), Some(""), &v(&["ls"])),
            v(&["ls"])
        );
    }

    #[test]
    fn nothing() {
        assert!(combine(None, None, None, &[]).is_empty());
    }
}
