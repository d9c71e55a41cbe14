//! Go's `text/template` for `--format`, with docker's functions, over the JSON rows the
//! commands build.
//!
//! The `gtmpl` crate was tried first and does not hold up for docker's formats: it prints maps
//! and lists in Rust's debug form and in hash order, `%q` without quotes, `nil` for `<nil>`,
//! and has no `$x = …` and no `slice`. So this is a small engine of its own: [`lex`] (text and
//! action tokens, trim markers, comments) → [`parse`] (the tree, with Go's parse-time checks)
//! → [`exec`] (Go's evaluation rules) over [`value::Val`] (JSON sorted into Go's structs and
//! maps, printed as Go prints them), calling [`funcs`] and [`printf`].
//!
//! Not supported: `define`, `template`, `block` (one template only), methods, `call`, `html`,
//! `js`, `urlquery`.

mod exec;
mod funcs;
mod lex;
mod parse;
mod printf;
mod value;

pub use value::Val;

/// A template that failed to parse or to run. The texts are Go's, so messages read as in
/// docker (`template: :1: unclosed action`).
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template: :{line}: {msg}")]
    Parse { line: usize, msg: String },
    #[error("template: :{line}:{col}: executing \"\" at <{node}>: {msg}")]
    Exec {
        line: usize,
        col: usize,
        node: String,
        msg: String,
    },
}

/// A parsed template, run once for each row.
#[derive(Debug)]
pub struct Template {
    src: String,
    nodes: Vec<parse::Node>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let toks = lex::lex(src)?;
        let nodes = parse::parse(src, toks)?;
        Ok(Template {
            src: src.to_string(),
            nodes,
        })
    }

    pub fn execute(&self, data: &Val) -> Result<String, TemplateError> {
        exec::execute(&self.src, &self.nodes, data)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data() -> Val {
        Val::from_json(
            &json!({
                "Id": "sha256:abc",
                "Size": 4_260_000,
                "Ratio": 0.5,
                "Big": 1e21,
                "RepoTags": ["busybox:latest", "busybox:1"],
                "Empty": [],
                "Nothing": null,
                "Config": {
                    "Cmd": ["sh", "-c", "echo"],
                    "Labels": {"b": "2", "a": "1"},
                    "Env": ["A=1"],
                },
                "History": [{"CreatedBy": "x"}],
            }),
            "Image",
        )
    }

    fn render(t: &str) -> String {
        match Template::parse(t).and_then(|t| t.execute(&data())) {
            Ok(s) => s,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn fields_and_go_renderings() {
        assert_eq!(render("{{.Id}}"), "sha256:abc");
        assert_eq!(render("{{.Config.Cmd}}"), "[sh -c echo]");
        assert_eq!(render("{{.Config.Labels}}"), "map[a:1 b:2]");
        assert_eq!(render("{{.Empty}}"), "[]");
        assert_eq!(render("{{.Nothing}}"), "<nil>");
        assert_eq!(render("{{.Size}} {{.Ratio}} {{.Big}}"), "4260000 0.5 1e+21");
        assert_eq!(render("{{.Config.Labels.nope}}"), "<no value>");
        assert_eq!(render("{{.Config.Labels.nope.deeper}}"), "<no value>");
        assert_eq!(
            render("{{.Config.Labels.a}} {{\"}}\"}} {{with $c := .Config}}{{$c.Env}}{{end}}"),
            "1 }} [A=1]"
        );
        assert_eq!(render("{{range .History}}{{.}}{{end}}"), "{x}");
        assert_eq!(render("{{else}}"), "ERR template: :1: unexpected {{else}}");
        // docker's Config fields that rbuild's JSON leaves out: Go's zero values
        assert_eq!(render("{{.Config.Volumes}}|{{.Config.Entrypoint}}|{{.Config.User}}|{{.Config.Healthcheck}}"), "map[]|[]||<nil>");
        assert_eq!(render("{{json .Config.Volumes}}"), "null");
        // `json` of a struct is the JSON it came from, without the zero values added
        assert_eq!(
            render("{{json .Config}}"),
            r#"{"Cmd":["sh","-c","echo"],"Env":["A=1"],"Labels":{"a":"1","b":"2"}}"#
        );
        assert_eq!(
            render("{{json .RepoTags}}"),
            r#"["busybox:latest","busybox:1"]"#
        );
    }

    #[test]
    fn missing_struct_field_is_an_error() {
        assert_eq!(
            render("{{.Nope}}"),
            "ERR template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type Image"
        );
        assert_eq!(
            render("ab\n {{.Config.Nope}}"),
            "ERR template: :2:3: executing \"\" at <.Config.Nope>: can't evaluate field Nope in type Config"
        );
        assert!(render("{{.Id.X}}").contains("can't evaluate field X in type string"));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(render("{{.Id"), "ERR template: :1: unclosed action");
        assert_eq!(
            render("x\n{{nofunc .Id}}"),
            "ERR template: :2: function \"nofunc\" not defined"
        );
        assert_eq!(render("{{if .Id}}x"), "ERR template: :1: unexpected EOF");
        assert_eq!(render("{{end}}"), "ERR template: :1: unexpected {{end}}");
        assert_eq!(
            render("{{$x}}"),
            "ERR template: :1: undefined variable \"$x\""
        );
        assert_eq!(
            render("{{}}"),
            "ERR template: :1: missing value for command"
        );
        assert_eq!(
            render("{{break}}"),
            "ERR template: :1: {{break}} outside {{range}}"
        );
        assert!(render("{{\"abc}}").contains("unterminated quoted string"));
        assert!(render("{{/* x }}").contains("unclosed comment"));
        assert!(render("{{.Id | 3}}").contains("non executable command"));
    }

    #[test]
    fn control_structures() {
        assert_eq!(
            render("{{if eq .Id \"sha256:abc\"}}yes{{else}}no{{end}}"),
            "yes"
        );
        assert_eq!(
            render("{{if .Nothing}}a{{else if .Empty}}b{{else}}c{{end}}"),
            "c"
        );
        assert_eq!(render("{{if .Nothing}}a{{else if .Size}}b{{end}}"), "b");
        assert_eq!(render("{{with .Config}}{{.Cmd}}{{end}}"), "[sh -c echo]");
        assert_eq!(render("{{with .Empty}}x{{else}}none{{end}}"), "none");
        assert_eq!(
            render("{{with .Nothing}}x{{else with .Id}}{{.}}{{end}}"),
            "sha256:abc"
        );
        assert_eq!(
            render("{{range .RepoTags}}[{{.}}]{{end}}"),
            "[busybox:latest][busybox:1]"
        );
        assert_eq!(
            render("{{range $i, $t := .RepoTags}}{{$i}}={{$t}} {{end}}"),
            "0=busybox:latest 1=busybox:1 "
        );
        assert_eq!(
            render("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}},{{end}}"),
            "a:1,b:2,"
        );
        assert_eq!(render("{{range .Empty}}x{{else}}empty{{end}}"), "empty");
        assert_eq!(
            render("{{range .RepoTags}}{{.}}{{break}}{{end}}"),
            "busybox:latest"
        );
        assert_eq!(
            render(
                "{{range .RepoTags}}{{if eq . \"busybox:latest\"}}{{continue}}{{end}}{{.}}{{end}}"
            ),
            "busybox:1"
        );
        assert_eq!(render("{{range 3}}{{.}}{{end}}"), "012");
        assert_eq!(
            render("{{range .Id}}{{end}}"),
            "ERR template: :1:8: executing \"\" at <.Id>: range can't iterate over sha256:abc"
        );
        assert_eq!(
            render("{{range .History}}{{.CreatedBy}}{{$.Id}}{{end}}"),
            "xsha256:abc"
        );
    }

    #[test]
    fn variables_trim_and_comments() {
        assert_eq!(render("{{$x := .Size}}{{$x}}"), "4260000");
        assert_eq!(render("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}"), "2");
        assert_eq!(render("a  {{- .Id -}}  \n b"), "asha256:abcb");
        assert_eq!(render("a {{/* note */}} b"), "a  b");
        assert_eq!(render("a {{- /* note */ -}} b"), "ab");
        assert_eq!(
            render("{{ `raw\\n` }}|{{ \"esc\\t\\\"q\\\"\" }}"),
            "raw\\n|esc\t\"q\""
        );
        assert_eq!(
            render("{{ 'a' }} {{ 0x1F }} {{ 1_000 }} {{ 2.50 }} {{ -3 }}"),
            "97 31 1000 2.5 -3"
        );
        assert_eq!(render("{{ true }} {{ nil }}"), "true <nil>");
        assert_eq!(
            render(r#"{{ '\n' }} {{ "\x41\u00e9" }} {{ '\'' }}"#),
            "10 Aé 39"
        );
        assert!(render("{{ 'ab' }}").contains("unterminated character constant"));
    }

    #[test]
    fn builtin_functions() {
        assert_eq!(
            render("{{len .RepoTags}} {{len .Id}} {{len .Config.Labels}}"),
            "2 10 2"
        );
        assert_eq!(render("{{index .RepoTags 1}} {{index .Config.Labels \"a\"}}[{{index .Config.Labels \"x\"}}]"), "busybox:1 1[]");
        assert!(
            render("{{index .RepoTags 5}}").contains("error calling index: index out of range: 5")
        );
        assert_eq!(
            render("{{slice .Id 0 6}} {{slice .RepoTags 1}}"),
            "sha256 [busybox:1]"
        );
        assert_eq!(
            render("{{and 1 0 .Nope}}|{{or 0 \"\" \"x\"}}|{{and 1 2}}|{{not .Empty}}"),
            "0|x|2|true"
        );
        assert_eq!(render("{{eq .Size 4260000}} {{eq 1 2 3 1}} {{ne .Id \"a\"}} {{lt 1 2}} {{le 2 2}} {{gt 1.5 2}} {{ge \"b\" \"a\"}}"), "true true true true true false true");
        assert!(render("{{eq .Id 1}}").contains("incompatible types for comparison"));
        assert!(render("{{lt .Empty 1}}").contains("invalid type for comparison"));
        assert_eq!(render("{{print \"a\" 1 2 \"b\"}}"), "a1 2b");
        assert_eq!(render("{{println \"a\" 1}}"), "a 1\n");
        assert!(render("{{len 1 2}}").contains("wrong number of args for len: want 1 got 2"));
        assert!(render("{{.Id 1}}").contains("can't give argument to non-function .Id"));
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(
            render("{{printf \"%s|%d|%v|%q\" .Id .Size .RepoTags \"a\\\"b\"}}"),
            "sha256:abc|4260000|[busybox:latest busybox:1]|\"a\\\"b\""
        );
        assert_eq!(render("{{printf \"[%-10s][%10s][%05d][%.2f][%x][%t][%%][%c][%T]\" \"ab\" \"cd\" 42 3.14159 255 true 65 .Size}}"), "[ab        ][        cd][00042][3.14][ff][true][%][A][int]");
        assert_eq!(render("{{printf \"%d\" .Id}}"), "%!d(string=sha256:abc)");
        assert_eq!(render("{{printf \"%s %s\" \"a\"}}"), "a %!s(MISSING)");
        assert_eq!(render("{{printf \"%s\" \"a\" 1}}"), "a%!(EXTRA int=1)");
        assert_eq!(
            render("{{printf \"%v %e %+d %*d\" 1e21 1500.0 5 4 7}}"),
            "1e+21 1.500000e+03 +5    7"
        );
        assert_eq!(render("{{.Size | printf \"%d bytes\"}}"), "4260000 bytes");
    }

    #[test]
    fn docker_functions_and_pipes() {
        assert_eq!(render("{{json .Config.Labels}}"), r#"{"a":"1","b":"2"}"#);
        assert_eq!(
            render("{{join .RepoTags \", \"}}"),
            "busybox:latest, busybox:1"
        );
        assert_eq!(
            render("{{split \"a:b:c\" \":\"}} {{len (split .Id \":\")}}"),
            "[a b c] 2"
        );
        assert_eq!(
            render("{{upper .Id}} {{lower \"AbC\"}} {{title \"hello big world\"}}"),
            "SHA256:ABC abc Hello Big World"
        );
        assert_eq!(
            render("[{{pad \"x\" 2 3}}] {{truncate .Id 6}} {{truncate \"ab\" 5}}"),
            "[  x   ] sha256 ab"
        );
        assert_eq!(render("{{.Id | upper | printf \"<%s>\"}}"), "<SHA256:ABC>");
        assert_eq!(
            render("{{(index .RepoTags 0) | len}} {{(index .History 0).CreatedBy}}"),
            "14 x"
        );
        assert_eq!(render("{{.RepoTags | join \"+\"}}"), "ERR template: :1:14: executing \"\" at <join>: error calling join: wrong type for value; expected []string; got string");
    }

    /// Every template made of three of these pieces parses and runs, or fails with an error:
    /// no panic (slicing inside multi-byte text, unbalanced blocks, stray delimiters).
    #[test]
    fn pieces_never_panic() {
        let pieces = [
            "{{",
            "}}",
            "{{-",
            "-}}",
            " ",
            "é",
            "{{.Id}}",
            "{{if .Id}}",
            "{{else}}",
            "{{end}}",
            "{{range .RepoTags}}",
            "{{break}}",
            "$x",
            ":=",
            "\"",
            "`",
            "'",
            "(",
            ")",
            "|",
            "/*",
            "*/",
            ".Config",
            "index",
            "printf \"%",
            "1e",
            "-",
            "{{with",
            "{{$x := 1}}",
        ];
        let d = data();
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let t = format!("{a}{b}{c}");
                    if let Ok(t) = Template::parse(&t) {
                        let _ = t.execute(&d);
                    }
                }
            }
        }
    }
}
