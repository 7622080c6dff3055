# Helpers shared by the azd hooks (POSIX sh). Sourced by the hook scripts, never run alone.
# Each hook sets HOOK_NAME before sourcing this file.

say() {
    printf '%s: %s\n' "${HOOK_NAME:-hook}" "$*"
}

die() {
    printf '%s: error: %s\n' "${HOOK_NAME:-hook}" "$*" >&2
    exit 1
}

# require_cmd NAME HINT: stop with HINT when the command NAME is not on PATH.
require_cmd() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed or not on PATH; $2"
}

# require_var NAME HINT: stop with HINT when the variable NAME is unset or empty.
require_var() {
    eval "_value=\${$1:-}"
    [ -n "$_value" ] || die "$1 is not set; $2"
}

# azd runs hooks with its environment (the deployment outputs) already exported. When a hook is
# run by hand, load the same values with `azd env get-values`, without overriding anything the
# caller exported. $1 names a variable azd would have set; nothing is loaded when it is present.
load_azd_env_if_missing() {
    eval "_value=\${$1:-}"
    [ -n "$_value" ] && return 0
    command -v azd >/dev/null 2>&1 || return 0
    _values=$(azd env get-values 2>/dev/null) || return 0
    while IFS= read -r _line; do
        case "$_line" in
            *=*) ;;
            *) continue ;;
        esac
        _key=${_line%%=*}
        _val=${_line#*=}
        _val=${_val#\"}
        _val=${_val%\"}
        case "$_key" in
            '' | [0-9]* | *[!A-Za-z0-9_]*) continue ;;
        esac
        eval "_set=\${$_key+set}"
        [ "$_set" = set ] && continue
        export "$_key=$_val"
    done <<EOF_VALUES
$_values
EOF_VALUES
}
