//! Each lint rule: a Dockerfile that triggers it (rule, line and column checked) and ones that
//! must not (no false positives). Runs the library: `parse`, `parse_instructions`, `lint`.

mod common;

use rbuild::dockerfile::instructions::parse_instructions;
use rbuild::dockerfile::lint::{lint, LintReport, RULES};
use rbuild::dockerfile::parse;

fn report(source: &str) -> LintReport {
    let df = parse(source, "Dockerfile").expect("parses");
    let stages = parse_instructions(&df).expect("typed instructions");
    lint(&df, &stages).expect("valid check directive")
}

/// (rule, line, column, message) of every warning.
fn warnings(source: &str) -> Vec<(&'static str, usize, usize, String)> {
    report(source)
        .warnings
        .into_iter()
        .map(|w| (w.rule, w.span.start_line, w.span.start_col, w.message))
        .collect()
}

/// Asserts that `rule` fires exactly at these (line, column)s and returns its messages.
#[track_caller]
fn fires(source: &str, rule: &str, at: &[(usize, usize)]) -> Vec<String> {
    let found: Vec<_> = warnings(source)
        .into_iter()
        .filter(|w| w.0 == rule)
        .collect();
    let places: Vec<_> = found.iter().map(|w| (w.1, w.2)).collect();
    assert_eq!(places, at, "{rule} in:\n{source}\nfound: {found:?}");
    found.into_iter().map(|w| w.3).collect()
}

#[track_caller]
fn silent(source: &str, rule: &str) {
    fires(source, rule, &[]);
}

#[test]
fn workdir_instead_of_cd() {
    let msgs = fires(
        "FROM alpine\nRUN cd /src\nRUN make\n",
        "WorkdirInsteadOfCd",
        &[(2, 1)],
    );
    assert!(msgs[0].contains("RUN cd /src"), "{msgs:?}");
    fires(
        "FROM alpine\n  RUN cd /src ;\nCOPY . .\nRUN make\n",
        "WorkdirInsteadOfCd",
        &[(2, 3)],
    );
    // cd with a command after it works within its RUN.
    silent(
        "FROM alpine\nRUN cd /src && make\nRUN make install\n",
        "WorkdirInsteadOfCd",
    );
    silent(
        "FROM alpine\nRUN cd /src; make\nRUN make install\n",
        "WorkdirInsteadOfCd",
    );
    // No later RUN in the same stage.
    silent("FROM alpine\nRUN cd /src\n", "WorkdirInsteadOfCd");
    silent(
        "FROM alpine AS a\nRUN cd /src\nFROM alpine\nRUN make\n",
        "WorkdirInsteadOfCd",
    );
    silent("FROM alpine\nRUN cdrecord x\nRUN y\n", "WorkdirInsteadOfCd");
}

#[test]
fn json_args_recommended() {
    let msgs = fires(
        "FROM alpine\nCMD nginx -g 'daemon off;'\nENTRYPOINT /bin/app\n",
        "JSONArgsRecommended",
        &[(2, 1), (3, 1)],
    );
    assert!(msgs[0].contains("for CMD") && msgs[1].contains("for ENTRYPOINT"));
    silent(
        "FROM alpine\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\nENTRYPOINT [\"/bin/app\"]\n",
        "JSONArgsRecommended",
    );
    // A SHELL instruction means the shell form is deliberate.
    silent(
        "FROM alpine\nSHELL [\"/bin/bash\", \"-c\"]\nCMD exec app\n",
        "JSONArgsRecommended",
    );
    silent(
        "FROM alpine AS base\nSHELL [\"/bin/bash\", \"-c\"]\nFROM base\nCMD exec app\n",
        "JSONArgsRecommended",
    );
    // HEALTHCHECK and RUN are not concerned.
    silent(
        "FROM alpine\nRUN echo hi\nHEALTHCHECK CMD wget -q localhost\n",
        "JSONArgsRecommended",
    );
}

#[test]
fn copy_instead_of_add() {
    fires(
        "FROM alpine\nADD . /app\nADD --chown=1:1 a.conf b.conf /etc/\n",
        "CopyInsteadOfAdd",
        &[(2, 1), (3, 1)],
    );
    fires(
        "FROM alpine\nADD [\"my file\", \"/app/\"]\n",
        "CopyInsteadOfAdd",
        &[(2, 1)],
    );
    for add in [
        "ADD https://example.com/app.bin /app/",
        "ADD git@github.com:moby/buildkit.git /src",
        "ADD --keep-git-dir=true https://github.com/moby/buildkit.git /src",
        "ADD rootfs.tar.gz /",
        "ADD vendor.tgz deps.tar.xz /opt/",
        "ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.com/a /a",
        "ADD $SOURCE /app",
        "ADD --unpack=true bundle /x",
        "COPY . /app",
    ] {
        silent(&format!("FROM alpine\nARG SOURCE\n{add}\n"), "CopyInsteadOfAdd");
    }
}

#[test]
fn secrets_used_in_arg_or_env() {
    let msgs = fires(
        "ARG NPM_TOKEN\nFROM alpine\nARG DB_PASSWORD=x\nENV   PATH=/bin aws_secret_access_key=k\nENV API_KEY abc\n",
        "SecretsUsedInArgOrEnv",
        &[(1, 5), (3, 5), (4, 17), (5, 5)],
    );
    assert_eq!(
        msgs[1],
        "Do not use ARG or ENV instructions for sensitive data (ARG \"DB_PASSWORD\")"
    );
    assert!(
        msgs[2].contains("ENV \"aws_secret_access_key\""),
        "{msgs:?}"
    );
    silent(
        "FROM alpine\nARG PUBLIC_KEY KEY_FILE TOKENIZER_VERSION KEYBOARD MONKEY PASSWORDS\nENV GPG_KEY_VERSION=1 USER=me\nLABEL password=none\n",
        "SecretsUsedInArgOrEnv",
    );
}

#[test]
fn apt_lists_not_cleaned() {
    fires(
        "FROM debian\nRUN apt-get update && apt-get install -y curl\nRUN apt-get update \\\n && DEBIAN_FRONTEND=noninteractive apt-get -y install git\n",
        "AptListsNotCleaned",
        &[(2, 1), (3, 1)],
    );
    fires(
        "FROM debian\nRUN [\"sh\", \"-c\", \"apt-get update && apt-get install -y x\"]\n",
        "AptListsNotCleaned",
        &[(2, 1)],
    );
    fires(
        "FROM debian\nRUN <<EOF\napt-get update\napt-get install -y x\nEOF\n",
        "AptListsNotCleaned",
        &[(2, 1)],
    );
    for run in [
        "RUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*",
        "RUN apt-get update \\\n && apt-get install -y curl \\\n && rm -rf /var/lib/apt/lists",
        "RUN --mount=type=cache,target=/var/lib/apt/lists apt-get update && apt-get install -y x",
        "RUN --mount=type=cache,target=/var/lib/apt,sharing=locked apt-get update && apt-get install -y x",
        "RUN echo apt-get install is documented here",
        "RUN apt-get remove -y x",
    ] {
        silent(&format!("FROM debian\n{run}\n"), "AptListsNotCleaned");
    }
}

#[test]
fn apt_update_alone() {
    fires(
        "FROM debian\nRUN apt-get update\nRUN apt-get install -y curl && rm -rf /var/lib/apt/lists/*\n",
        "AptUpdateAlone",
        &[(2, 1)],
    );
    fires(
        "FROM debian\nRUN apt update -qq || true\n",
        "AptUpdateAlone",
        &[(2, 1)],
    );
    silent(
        "FROM debian\nRUN apt-get update && apt-get upgrade -y && rm -rf /var/lib/apt/lists/*\n",
        "AptUpdateAlone",
    );
    silent(
        "FROM debian\nRUN apt-get update && apt-get install -y x && rm -rf /var/lib/apt/lists/*\n",
        "AptUpdateAlone",
    );
}

#[test]
fn maintainer_deprecated() {
    fires(
        "FROM alpine\nMAINTAINER Jane <jane@example.com>\n",
        "MaintainerDeprecated",
        &[(2, 1)],
    );
    silent(
        "FROM alpine\nLABEL org.opencontainers.image.authors=jane@example.com\n",
        "MaintainerDeprecated",
    );
}

#[test]
fn stage_name_casing() {
    fires(
        "FROM alpine AS Builder\nFROM builder\n",
        "StageNameCasing",
        &[(1, 16)],
    );
    silent("FROM alpine AS builder-2.x\n", "StageNameCasing");
    silent("FROM alpine\n", "StageNameCasing");
}

#[test]
fn from_as_casing() {
    fires("FROM alpine as base\n", "FromAsCasing", &[(1, 13)]);
    fires("from alpine AS base\n", "FromAsCasing", &[(1, 13)]);
    silent(
        "FROM alpine AS base\nfrom alpine as other\n",
        "FromAsCasing",
    );
}

#[test]
fn consistent_instruction_casing() {
    let msgs = fires(
        "FROM alpine\nrun echo a\nRUN echo b\nCopy . .\n",
        "ConsistentInstructionCasing",
        &[(2, 1), (4, 1)],
    );
    assert_eq!(
        msgs[0],
        "Command 'run' should match the case of the command majority (uppercase)"
    );
    fires(
        "from alpine\nrun echo a\nRUN echo b\n",
        "ConsistentInstructionCasing",
        &[(3, 1)],
    );
    silent("from alpine\nrun echo a\n", "ConsistentInstructionCasing");
    silent("FROM alpine\nRUN echo a\n", "ConsistentInstructionCasing");
}

#[test]
fn stage_name_duplicates_and_reserved() {
    fires(
        "FROM alpine AS a\nFROM alpine AS a\n",
        "DuplicateStageName",
        &[(2, 16)],
    );
    fires("FROM alpine AS scratch\n", "ReservedStageName", &[(1, 16)]);
    silent("FROM alpine AS a\nFROM alpine AS b\n", "DuplicateStageName");
    silent("FROM scratch AS base\n", "ReservedStageName");
    // The name is found as a word, not inside the image name.
    fires(
        "FROM alias as a\nFROM alpine AS A\n",
        "DuplicateStageName",
        &[(2, 16)],
    );
    fires("FROM alias as a\n", "FromAsCasing", &[(1, 12)]);
}

#[test]
fn multiple_instructions_disallowed() {
    fires(
        "FROM alpine\nCMD [\"a\"]\nENTRYPOINT [\"x\"]\nCMD [\"b\"]\nENTRYPOINT [\"y\"]\n",
        "MultipleInstructionsDisallowed",
        &[(2, 1), (3, 1)],
    );
    silent(
        "FROM alpine AS a\nCMD [\"a\"]\nFROM a\nCMD [\"b\"]\n",
        "MultipleInstructionsDisallowed",
    );
}

#[test]
fn legacy_key_value_format() {
    fires(
        "FROM alpine\nENV A 1\nLABEL maintainer me\n",
        "LegacyKeyValueFormat",
        &[(2, 1), (3, 1)],
    );
    silent(
        "FROM alpine\nENV A=1 B=\"x y\"\nLABEL a=b\n",
        "LegacyKeyValueFormat",
    );
}

#[test]
fn workdir_relative_path() {
    let msgs = fires(
        "FROM alpine\nWORKDIR app\nWORKDIR sub\n",
        "WorkdirRelativePath",
        &[(2, 1)],
    );
    assert_eq!(
        msgs[0],
        "Relative workdir \"app\" can have unexpected results if the base image changes"
    );
    silent(
        "FROM alpine\nWORKDIR /app\nWORKDIR sub\n",
        "WorkdirRelativePath",
    );
    silent(
        "FROM alpine AS base\nWORKDIR /app\nFROM base\nWORKDIR sub\n",
        "WorkdirRelativePath",
    );
    silent(
        "FROM alpine\nARG DIR=/srv\nWORKDIR $DIR\n",
        "WorkdirRelativePath",
    );
}

#[test]
fn no_empty_continuation() {
    fires(
        "FROM alpine\nRUN echo a \\\n\n  b\n",
        "NoEmptyContinuation",
        &[(2, 1)],
    );
    silent("FROM alpine\nRUN echo a \\\n  b\n", "NoEmptyContinuation");
}

#[test]
fn undefined_var_in_stage() {
    let source = "FROM alpine
ARG DIR_ASSETS=assets/
COPY $DIR_ASSET /srv/
WORKDIR ${HOME_DIR}/app
COPY --chown=$APP_UID:$APP_GID a b
ENV A=1 B=$A
ARG C=1 D=$C
ENV PATH=$PAHT:/app/bin
";
    let msgs = fires(
        source,
        "UndefinedVar",
        &[(3, 6), (4, 9), (5, 14), (5, 23), (6, 11), (8, 10)],
    );
    assert_eq!(
        msgs[0],
        "Usage of undefined variable '$DIR_ASSET' (did you mean $DIR_ASSETS?)"
    );
    assert_eq!(msgs[1], "Usage of undefined variable '$HOME_DIR'");
    assert_eq!(
        msgs[5],
        "Usage of undefined variable '$PAHT' (did you mean $PATH?)"
    );
}

#[test]
fn undefined_var_scoping() {
    // Declared later in the stage is still undefined here.
    fires(
        "FROM alpine\nCOPY $foo .\nARG foo=bar\nCOPY $foo .\n",
        "UndefinedVar",
        &[(2, 6)],
    );
    // Global ARGs and platform args must be redeclared inside a stage.
    let msgs = fires(
        "ARG VERSION=1\nFROM alpine:$VERSION\nLABEL version=$VERSION arch=$TARGETARCH\n",
        "UndefinedVar",
        &[(3, 15), (3, 29)],
    );
    assert!(
        msgs[0].contains("declare it in the stage with ARG VERSION"),
        "{msgs:?}"
    );
    assert!(msgs[1].contains("ARG TARGETARCH"), "{msgs:?}");
    silent(
        "ARG VERSION=1\nFROM alpine:$VERSION\nARG VERSION\nARG TARGETARCH\nLABEL version=$VERSION arch=$TARGETARCH\n",
        "UndefinedVar",
    );
    // ENV and ARG of a base stage from this Dockerfile are inherited; other stages' are not.
    silent(
        "FROM alpine AS base\nENV APP=/app\nARG foo=Dockerfile\nFROM base\nCOPY $foo $APP/\n",
        "UndefinedVar",
    );
    fires(
        "FROM alpine AS base\nENV APP=/app\nFROM alpine\nWORKDIR $APP\n",
        "UndefinedVar",
        &[(4, 9)],
    );
    // PATH and the proxy args are always there; escaped dollars are not references.
    silent(
        "FROM alpine\nENV PATH=/opt/bin:$PATH NOPROXY=$no_proxy P=$HTTPS_PROXY\nCOPY \\$literal /x\n",
        "UndefinedVar",
    );
    // RUN, CMD, ENTRYPOINT and HEALTHCHECK are expanded by the shell in the container.
    silent(
        "FROM alpine\nRUN echo $HOME\nCMD echo $HOME\nENTRYPOINT [\"sh\", \"-c\", \"$X\"]\nHEALTHCHECK CMD test -d $Y\n",
        "UndefinedVar",
    );
    // Every expanded instruction is checked.
    fires(
        "FROM alpine\nEXPOSE $PORT\nUSER $U:$G\nVOLUME $V\nSTOPSIGNAL $S\nLABEL $K=v\nADD $A /\n",
        "UndefinedVar",
        &[(2, 8), (3, 6), (3, 9), (4, 8), (5, 12), (6, 7), (7, 5)],
    );
}

#[test]
fn undefined_arg_in_from() {
    let msgs = fires(
        "ARG VERSION=1\nFROM alpine:${VERSOIN} AS a\nFROM --platform=$BUILDPLATFORM alpine:$TAG\n",
        "UndefinedArgInFrom",
        &[(2, 13), (3, 39)],
    );
    assert_eq!(
        msgs[0],
        "FROM argument 'VERSOIN' is not declared (did you mean VERSION?)"
    );
    silent(
        "ARG IMAGE=alpine\nARG TAG=3\nFROM --platform=$TARGETPLATFORM ${IMAGE}:${TAG}\n",
        "UndefinedArgInFrom",
    );
    // A global ARG default may use earlier global ARGs only.
    fires(
        "ARG A=x\nARG B=$A$C\nFROM alpine\n",
        "UndefinedVar",
        &[(2, 9)],
    );
}

#[test]
fn check_directive_skips_rules() {
    let source = "# check=skip=JSONArgsRecommended, MaintainerDeprecated\nFROM alpine\nMAINTAINER me\nCMD run\nENV A 1\n";
    let rules: Vec<_> = warnings(source).into_iter().map(|w| w.0).collect();
    assert_eq!(rules, ["LegacyKeyValueFormat"]);
    let all = report("# check=skip=all;error=true\nFROM alpine\nMAINTAINER me\nCMD run\n");
    assert!(all.warnings.is_empty());
    assert!(all.error_on_warning);
    assert!(!report("FROM alpine\n").error_on_warning);
}

#[test]
fn check_comment_skips_one_instruction() {
    let source = "FROM alpine\n# check=skip=JSONArgsRecommended\nCMD a\nENTRYPOINT b\n";
    fires(source, "JSONArgsRecommended", &[(4, 1)]);
}

#[test]
fn bad_check_directive_is_an_error_with_location() {
    let df = parse("# check=skip=all;bogus=1\nFROM alpine\n", "Dockerfile").unwrap();
    let stages = parse_instructions(&df).unwrap();
    let err = lint(&df, &stages).unwrap_err();
    assert_eq!((err.line, err.col), (1, 1));
    assert!(err.message().contains("bogus"), "{}", err.message());
}

#[test]
fn clean_dockerfile_has_no_warnings() {
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lint/clean/Dockerfile"),
    )
    .unwrap();
    assert_eq!(warnings(&source), []);
}

#[test]
fn every_rule_has_a_triggering_fixture() {
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/lint/mistakes/Dockerfile"),
    )
    .unwrap();
    let found: std::collections::BTreeSet<_> = warnings(&source).into_iter().map(|w| w.0).collect();
    for rule in RULES {
        assert!(found.contains(rule.name), "{} not triggered", rule.name);
    }
}

#[test]
fn escape_directive_and_crlf() {
    // With `# escape=``, a backslash is literal and a backtick escapes the dollar.
    fires(
        "# escape=`\r\nFROM alpine\r\nWORKDIR C:\\$DIR\r\nCOPY `$LITERAL $REAL\r\n",
        "UndefinedVar",
        &[(3, 12), (4, 16)],
    );
}

#[test]
fn onbuild_triggers_are_not_checked() {
    // Triggers run in the child build, with the child's scope.
    silent(
        "FROM alpine\nONBUILD COPY $SRC /app\nONBUILD ADD . /app\n",
        "UndefinedVar",
    );
    silent("FROM alpine\nONBUILD ADD . /app\n", "CopyInsteadOfAdd");
}

/// Every BuildKit parser test file that also gives typed stages lints without a panic, and
/// every warning points into the file with a known rule.
#[test]
fn buildkit_testfiles_lint_sanely() {
    let dir = common::conformance::dockerfile_dir().join("parser/testfiles");
    let mut linted = 0;
    for entry in std::fs::read_dir(&dir).expect("conformance data") {
        let path = entry.unwrap().path().join("Dockerfile");
        let source = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let Ok(df) = parse(&source, "Dockerfile") else {
            continue;
        };
        let Ok(stages) = parse_instructions(&df) else {
            continue;
        };
        let report = lint(&df, &stages).expect("no check directive in these files");
        let lines = source.lines().count();
        for w in &report.warnings {
            assert!(
                RULES.iter().any(|r| r.name == w.rule),
                "{}: {w:?}",
                path.display()
            );
            assert!(
                w.span.start_line >= 1 && w.span.start_line <= lines && w.span.start_col >= 1,
                "{}: {w:?}",
                path.display()
            );
            assert!(w.span.end <= source.len() && w.span.start <= w.span.end);
        }
        linted += 1;
    }
    assert!(linted >= 20, "only {linted} files linted");
}
