# Helpers shared by the azd hooks (POSIX sh). Sourced by the hook scripts, never run alone.
# Each hook sets HOOK_NAME before sourcing this file. lib.ps1 is the PowerShell twin.

say() {
    printf '%s: %s\n' "${HOOK_NAME:-hook}" "$*"
}

warn() {
    printf '%s: warning: %s\n' "${HOOK_NAME:-hook}" "$*" >&2
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

# lower TEXT: TEXT in lower case.
lower() {
    printf '%s' "$1" | tr '[:upper:]' '[:lower:]'
}

# last_line FILE: the last non-blank line of FILE (an error message, usually).
last_line() {
    grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1
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

# check_az_login: stop, saying what to do, unless the Azure CLI is signed in and can act on
# AZURE_SUBSCRIPTION_ID, the subscription azd deploys to. azd and az keep separate sign-ins, and
# az otherwise acts on its own default subscription; every az call of the hooks therefore passes
# --subscription "$AZURE_SUBSCRIPTION_ID", and this check runs once, before the first of them.
check_az_login() {
    require_cmd az "install the Azure CLI (https://aka.ms/installazurecli) and sign in with 'az login'"
    require_var AZURE_SUBSCRIPTION_ID "azd sets it to the subscription it deploys to; run the hook through azd (azd hooks run $HOOK_NAME) or export it"
    _login_err=$(mktemp)
    if _login_id=$(az account show --subscription "$AZURE_SUBSCRIPTION_ID" --query id --output tsv 2>"$_login_err"); then
        rm -f "$_login_err"
    else
        _login_msg=$(last_line "$_login_err")
        rm -f "$_login_err"
        _tenant=${AZURE_TENANT_ID:+ --tenant $AZURE_TENANT_ID}
        case "$_login_msg" in
            *"az login"*)
                die "the Azure CLI is not signed in (az: $_login_msg). azd and az sign in separately: run 'az login$_tenant' with the account you gave azd, then rerun" ;;
            *)
                die "the Azure CLI cannot use subscription $AZURE_SUBSCRIPTION_ID, the one azd deploys to (az: $_login_msg). Sign az in with an account that can: 'az login$_tenant', then 'az account set --subscription $AZURE_SUBSCRIPTION_ID'" ;;
        esac
    fi
    if [ "$(lower "$_login_id")" != "$(lower "$AZURE_SUBSCRIPTION_ID")" ]; then
        die "the Azure CLI answered for subscription '$_login_id' when asked for $AZURE_SUBSCRIPTION_ID; run 'az account set --subscription $AZURE_SUBSCRIPTION_ID' and rerun"
    fi
}

# find_python: print the first Python 3.11 or newer on PATH (IMGSEARCH_HOOK_PYTHON first).
find_python() {
    for _py in ${IMGSEARCH_HOOK_PYTHON:-} python3.13 python3.12 python3.11 python3 python; do
        command -v "$_py" >/dev/null 2>&1 || continue
        if "$_py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            printf '%s' "$_py"
            return 0
        fi
    done
    return 1
}

PYTHON_HINT="install Python 3.11 or newer (https://www.python.org/downloads/ or your package manager) and make it the python3 on PATH, or point IMGSEARCH_HOOK_PYTHON at it"

# What a ready environment has: the indexer importable, and azure-identity 1.24 or newer, the
# first that accepts AZURE_TOKEN_CREDENTIALS=AzureDeveloperCliCredential.
READY_CHECK='import importlib.metadata as m, sys
import indexer
version = tuple(int(p) for p in m.version("azure-identity").split(".")[:2])
sys.exit(0 if version >= (1, 24) else 1)'

# ensure_python_env VENV ROOT: make VENV a virtual environment with imgsearch from the checkout
# ROOT and its base dependencies only (no torch, no offline models: those are the [local]
# extra). An environment that already has them (make setup's .venv, or an earlier run) is reused
# as it is; a missing one is created; an incomplete one gets the package installed.
ensure_python_env() {
    _venv=$1
    _root=$2
    _vpy="$_venv/bin/python"
    if [ -x "$_vpy" ] && "$_vpy" -c "$READY_CHECK" >/dev/null 2>&1; then
        say "using the Python environment $_venv"
        return 0
    fi
    if [ -x "$_vpy" ]; then
        "$_vpy" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 ||
            die "$_venv was made with a Python older than 3.11; delete it (or point IMGSEARCH_HOOK_VENV elsewhere) and rerun 'azd hooks run $HOOK_NAME'"
    else
        _py=$(find_python) || die "no Python 3.11 or newer found to set up imgsearch; $PYTHON_HINT"
        say "creating a Python virtual environment in $_venv with $(command -v "$_py") ($("$_py" --version 2>&1))"
        "$_py" -m venv "$_venv" ||
            die "could not create a virtual environment in $_venv; on Debian or Ubuntu install python3-venv, then rerun 'azd hooks run $HOOK_NAME'"
    fi
    say "installing imgsearch from $_root into $_venv, with its base dependencies only (no torch, no offline models); the first time takes a minute or two"
    "$_vpy" -m pip install --quiet --disable-pip-version-check --editable "$_root" ||
        die "pip could not install imgsearch into $_venv; its message is above"
    "$_vpy" -c "$READY_CHECK" ||
        die "imgsearch is installed in $_venv but not usable (it needs azure-identity 1.24 or newer); see the messages above"
    say "imgsearch is installed in $_venv"
}

# The deployment outputs, under the names indexer.settings.Settings reads, for the imgsearch
# commands a hook runs. An empty AZURE_SEARCH_VECTOR_COMPRESSION leaves the index's own
# compression (and a new index the default: indexer/vector_compression.py). DefaultAzureCredential
# uses azd's sign-in and nothing else; only a deployment without azd names another credential,
# on purpose: IMGSEARCH_HOOK_TOKEN_CREDENTIALS=AzureCliCredential.
export_deployment_settings() {
    export SEARCH_ENDPOINT="$AZURE_SEARCH_ENDPOINT"
    export SEARCH_INDEX_NAME="$AZURE_SEARCH_INDEX_NAME"
    export VISION_MODEL_VERSION="$AZURE_VISION_MODEL_VERSION"
    export SEARCH_VECTOR_COMPRESSION="${AZURE_SEARCH_VECTOR_COMPRESSION:-}"
    export VISION_ENDPOINT="$AZURE_VISION_ENDPOINT"
    export VISION_API_VERSION="${AZURE_VISION_API_VERSION:-2024-02-01}"
    export AZURE_TOKEN_CREDENTIALS="${IMGSEARCH_HOOK_TOKEN_CREDENTIALS:-AzureDeveloperCliCredential}"
}
