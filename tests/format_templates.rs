//! `--format`/`-f` templates through the real binary: Go's text/template grammar with
//! docker's functions on `images` rows and `inspect` objects, docker's renderings of empty
//! values, and exit status 1 with nothing on stdout for bad templates and missing fields.

mod common;

use common::golden::table as table_of;
use common::{assert_failure, stdout, TestEnv};

/// A store with one small image, `busybox:latest` and `busybox:1.0`, with labels, a CMD and
/// an ENV (and no entrypoint, volumes or healthcheck).
fn env_with_image() -> TestEnv {
    let env = TestEnv::new();
    env.import_base_with(
        "busybox:latest",
        &[r#"CMD ["sh", "-c", "echo hi"]"#, "LABEL b=2 a=1", "ENV X=1"],
    );
    env.ok(&["tag", "busybox:latest", "busybox:1.0"]);
    env
}

/// Runs a command that must fail: exit status 1, nothing on stdout; returns stderr.
fn fails_quietly(env: &TestEnv, args: &[&str]) -> String {
    let out = env.run(args);
    let err = assert_failure(&format!("rbuild {args:?}"), &out);
    assert_eq!(out.status.code(), Some(1), "rbuild {args:?}: {err}");
    assert_eq!(stdout(&out), "", "rbuild {args:?} printed to stdout");
    err
}

/// The bug: only `{{.A.B}}` and `{{json}}` worked; `index`, `range`, `len`, `join`, `printf`,
/// `upper`, `if eq` and pipes printed `<no value>` (or the object) and exited 0.
#[test]
fn bug_format_templates_only_fields_and_json_worked() {
    let env = env_with_image();
    let out = env.ok(
        &[
            "inspect",
            "-f",
            r#"{{index .RepoTags 0}}|{{range $i, $t := .RepoTags}}{{$i}}={{$t}};{{end}}|{{len .RepoTags}}|{{join .Config.Cmd "+"}}|{{printf "%-6s|" .Os}}{{upper .Architecture}}|{{if eq .Os "linux"}}L{{else}}N{{end}}|{{.Os | upper | printf "<%s>"}}"#,
            "busybox:latest",
        ],
    );
    let arch = env.ok(&["inspect", "-f", "{{.Architecture}}", "busybox"]);
    assert_eq!(
        out,
        format!(
            "busybox:1.0|0=busybox:1.0;1=busybox:latest;|2|sh+-c+echo hi|linux |{}|L|<LINUX>\n",
            arch.trim().to_uppercase()
        )
    );
}

#[test]
fn images_rows_through_templates_and_docker_functions() {
    let env = env_with_image();
    let id = env.ok(&["images", "-q"]).trim().to_string();
    let out = env.ok(
        &[
            "images",
            "--format",
            r#"{{upper .Repository}}|{{len .Tag}}|{{if eq .Tag "latest"}}L{{else}}{{.Tag}}{{end}}|{{truncate .ID 4}}|[{{pad .Tag 1 2}}]|{{title "big box"}}|{{lower "ABC"}}|{{split .Repository "y"}}|{{json .Containers}}|{{.ID | len | printf "%03d"}}"#,
            "busybox",
        ],
    );
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let id4: String = id.chars().take(4).collect();
    assert_eq!(
        lines,
        [
            format!("BUSYBOX|3|1.0|{id4}|[ 1.0  ]|Big Box|abc|[bus box]|\"N/A\"|012"),
            format!("BUSYBOX|6|L|{id4}|[ latest  ]|Big Box|abc|[bus box]|\"N/A\"|012"),
        ]
    );
    // `\t` typed in the format is a tab; a trailing action's `-}}` trims
    let out = env.ok(&[
        "images",
        "--format",
        r"{{.Repository}}\t{{.Tag -}}   ",
        "busybox:1.0",
    ]);
    assert_eq!(out, "busybox\t1.0\n");
}

#[test]
fn images_table_prefix_as_docker() {
    let env = env_with_image();
    // `table` alone is the default table
    assert_eq!(
        table_of(&env.ok(&["images", "--format", "table"])),
        table_of(&env.ok(&["images"]))
    );
    // `table TEMPLATE`: the header is the template run over the column titles, functions too
    let out = env.ok(&[
        "images",
        "--format",
        r"table {{.Repository}}\t{{lower .Tag}}",
        "busybox:1.0",
    ]);
    assert_eq!(out, "REPOSITORY   tag\nbusybox      1.0\n");
    // `json`: one object per row, as before
    let out = env.ok(&["images", "--format", "json", "busybox:1.0"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["Tag"], "1.0");
}

#[test]
fn inspect_maps_structs_and_docker_empty_renderings() {
    let env = env_with_image();
    let out = env.ok(
        &[
            "inspect",
            "-f",
            r#"{{.Config.Labels}}|{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}|{{.Config.Labels.nope}}|[{{index .Config.Labels "nope"}}]|{{json .Config.Labels}}|{{with .Config}}{{.Env}}{{end}}"#,
            "busybox",
        ],
    );
    assert_eq!(
        out,
        "map[a:1 b:2]|a=1,b=2,|<no value>|[]|{\"a\":\"1\",\"b\":\"2\"}|[X=1]\n"
    );
    // fields docker always has, unset here: Go's zero values; sizes as plain integers
    let out = env.ok(
        &[
            "inspect",
            "-f",
            "{{.Config.Volumes}}|{{.Config.Entrypoint}}|{{.Config.Healthcheck}}|{{json .Config.Volumes}}|{{.Parent}}|{{.Size}}",
            "busybox",
        ],
    );
    let size = env.ok(&["inspect", "-f", "{{json .Size}}", "busybox"]);
    assert_eq!(out, format!("map[]|[]|<nil>|null||{}", size));
    assert!(!size.contains('e'), "{size}");
    // `json` of a struct is the object as `inspect` prints it (no zero values added)
    let config: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "-f", "{{json .Config}}", "busybox"])).unwrap();
    assert_eq!(config, env.inspect("busybox")["Config"]);
    // `--format json` is the default output, as in docker
    assert_eq!(
        env.ok(&["inspect", "--format", "json", "busybox"]),
        env.ok(&["inspect", "busybox"])
    );
}

#[test]
fn bad_templates_exit_1_before_any_output() {
    let env = env_with_image();
    for args in [["images", "--format", "{{.ID"], ["inspect", "-f", "{{.Id"]] {
        let err = fails_quietly(&env, &[args[0], args[1], args[2], "busybox"]);
        assert!(
            err.contains("template parsing error: template: :1: unclosed action"),
            "{err}"
        );
    }
    let err = fails_quietly(&env, &["images", "--format", "{{nofunc .ID}}"]);
    assert!(
        err.contains(r#"template parsing error: template: :1: function "nofunc" not defined"#),
        "{err}"
    );
    let err = fails_quietly(&env, &["inspect", "-f", "{{if .Id}}x", "busybox"]);
    assert!(err.contains("template parsing error"), "{err}");
}

#[test]
fn missing_fields_exit_1_naming_the_field() {
    let env = env_with_image();
    let err = fails_quietly(&env, &["images", "--format", "{{.Nope}}"]);
    assert!(
        err.contains(r#"template: :1:2: executing "" at <.Nope>: can't evaluate field Nope in type ImageSummary"#),
        "{err}"
    );
    // the table header does not hide it either
    let err = fails_quietly(&env, &["images", "--format", "table {{.ID}}\t{{.Nope}}"]);
    assert!(err.contains("can't evaluate field Nope"), "{err}");
    let err = fails_quietly(&env, &["inspect", "-f", "{{.Config.Nope}}", "busybox"]);
    assert!(
        err.contains(r#"template: :1:2: executing "" at <.Config.Nope>: can't evaluate field Nope in type Config"#),
        "{err}"
    );
    // a function's error names it
    let err = fails_quietly(&env, &["inspect", "-f", "{{index .RepoTags 7}}", "busybox"]);
    assert!(
        err.contains("at <index>: error calling index: index out of range: 7"),
        "{err}"
    );
}

#[test]
fn history_and_ps_take_format_too() {
    let env = env_with_image();
    // history: the default table is unchanged; templates see docker's fields
    let table = env.ok(&["history", "busybox"]);
    assert!(table.starts_with("IMAGE "), "{table}");
    assert_eq!(
        table_of(&env.ok(&["history", "--format", "table", "busybox"])),
        table_of(&table)
    );
    let id = env.ok(&["images", "-q"]).trim().to_string();
    let out = env.ok(&[
        "history",
        "--format",
        "{{.ID}}|{{len .CreatedAt}}|{{.Comment}}|{{json .Size}}",
        "busybox",
    ]);
    let first = out.lines().next().unwrap();
    assert!(first.starts_with(&format!("{id}|")), "{out}");
    assert!(first.contains("|20|Imported from"), "{out}");
    let err = fails_quietly(&env, &["history", "--format", "{{.Nope}}", "busybox"]);
    assert!(
        err.contains("can't evaluate field Nope in type HistoryEntry"),
        "{err}"
    );

    // ps: a stopped container, through a template and a custom table
    let out = env.run(&["run", "--name", "keep1", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = env.ok(&[
        "ps",
        "-a",
        "--format",
        r#"{{.Names}}|{{.Image}}|{{.State}}|{{slice .Status 0 10}}|{{.Command}}"#,
    ]);
    assert_eq!(out, "keep1|busybox|exited|Exited (3)|\"sh -c exit 3\"\n");
    let out = env.ok(&["ps", "-a", "--format", r"table {{.Names}}\t{{.State}}"]);
    assert_eq!(out, "NAMES     STATE\nkeep1     exited\n");
    let err = fails_quietly(&env, &["ps", "--format", "{{.Names"]);
    assert!(err.contains("template parsing error"), "{err}");
    env.ok(&["rm", "keep1"]);
}
