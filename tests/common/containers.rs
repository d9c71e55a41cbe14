//! A store for container tests: busybox as `bb`, `ps -a`'s STATUS of a container, and every
//! container force-removed at the end (so no monitor outlives the test). Test files add
//! their own helpers in an `impl Containers` block of their own.

use super::{stdout, TestEnv};

pub struct Containers(pub TestEnv);

impl Containers {
    pub fn new() -> Containers {
        Containers(TestEnv::with_base("bb"))
    }

    /// `ps -a`'s STATUS of container `name`.
    pub fn status_of(&self, name: &str) -> String {
        let out = self
            .0
            .ok(&["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]);
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}|")).map(str::to_string))
            .unwrap_or_else(|| panic!("{name} not in ps -a: {out}"))
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        let ids = self.0.run(&["ps", "-aq"]);
        let ids: Vec<String> = stdout(&ids).lines().map(str::to_string).collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.iter().map(String::as_str));
            let _ = self.0.run(&args);
        }
    }
}
