/*
 * cmd_repl.c - the interactive nucleus REPL.
 *
 * A Lua prompt with the pod API loaded, line editing, history and tab
 * completion (libedit).  Expressions print without "return"; incomplete
 * statements continue on the next line; results are pretty-printed with
 * control, bidirectional and zero-width characters escaped, so what the
 * operator reads is what the bytes are.  When a call needs approval and
 * the pod has no approve callback, the REPL asks y/N showing the call.
 *
 * Commands: :profile NAME (normalized profile), :explain (why the last
 * call was decided as it was), :help, :quit.
 *
 * Ctrl-C at the prompt discards the line being typed, continuation lines
 * included, and prompts again.  During an evaluation it stops the Lua code
 * with an "interrupted" error, and the session goes on.  Ctrl-D on an
 * empty line leaves.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>
#include <lauxlib.h>
#include <lua.h>

#include "cli/commands.h"
#include "cli/lua_host.h"
#include "nucleus/display.h"
#include "nucleus/home.h"
#include "nucleus/json.h"
#include "nucleus/policy.h"

void nu__lua_set_prompt(nu_approve_t (*fn)(const json_t *request));
bool nu__lua_last_decision(nu_decision_t *out);

#define NU_REPL_MAX_DEPTH 6

static lua_State *nu__repl_L;

/* Set by the SIGINT handler; the loop clears it. */
static volatile sig_atomic_t nu__interrupted;
static volatile sig_atomic_t nu__evaluating;

/* --- printing --------------------------------------------------------- */

static void nu__print_escaped(const char *s, size_t len, int flags)
{
    char *shown = nu_display_escape(s, len, flags);

    fputs(shown ? shown : "(out of memory)", stdout);
    free(shown);
}

static int nu__key_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void nu__print_value(lua_State *L, int idx, int depth, int indent);

static void nu__print_table(lua_State *L, int idx, int depth, int indent)
{
    size_t n = lua_rawlen(L, idx), nkeys = 0, cap = 16;
    char **keys = malloc(cap * sizeof *keys);

    if (depth >= NU_REPL_MAX_DEPTH || keys == NULL) {
        fputs("{...}", stdout);
        free(keys);
        return;
    }

    /* Sequence part first, then the other keys sorted. */
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 &&
            (size_t)lua_tointeger(L, -1) <= n)
            continue;
        if (nkeys == cap) {
            char **grown = realloc(keys, (cap *= 2) * sizeof *keys);
            if (grown == NULL)
                break;
            keys = grown;
        }
        lua_pushvalue(L, -1);
        keys[nkeys++] = strdup(luaL_tolstring(L, -1, NULL));
        lua_pop(L, 2);
    }
    qsort(keys, nkeys, sizeof *keys, nu__key_cmp);

    if (n == 0 && nkeys == 0) {
        fputs("{}", stdout);
        free(keys);
        return;
    }
    fputs("{\n", stdout);
    for (size_t i = 1; i <= n; i++) {
        printf("%*s", indent + 2, "");
        lua_rawgeti(L, idx, (lua_Integer)i);
        nu__print_value(L, lua_gettop(L), depth + 1, indent + 2);
        lua_pop(L, 1);
        fputs(",\n", stdout);
    }
    for (size_t i = 0; i < nkeys; i++) {
        printf("%*s", indent + 2, "");
        nu__print_escaped(keys[i], strlen(keys[i]), 0);
        fputs(" = ", stdout);
        lua_getfield(L, idx, keys[i]);
        nu__print_value(L, lua_gettop(L), depth + 1, indent + 2);
        lua_pop(L, 1);
        fputs(",\n", stdout);
        free(keys[i]);
    }
    printf("%*s}", indent, "");
    free(keys);
}

static void nu__print_value(lua_State *L, int idx, int depth, int indent)
{
    size_t len;
    const char *s;

    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        if (memchr(s, '\n', len) != NULL && depth > 0) {
            fputs("[[\n", stdout);
            nu__print_escaped(s, len, NU_DISPLAY_KEEP_NEWLINES);
            fputs("]]", stdout);
        } else {
            putchar('"');
            nu__print_escaped(s, len, 0);
            putchar('"');
        }
        break;
    case LUA_TTABLE:
        nu__print_table(L, idx, depth, indent);
        break;
    default:
        s = luaL_tolstring(L, idx, &len);
        nu__print_escaped(s, len, 0);
        lua_pop(L, 1);
    }
}

static void nu__print_results(lua_State *L, int base)
{
    int top = lua_gettop(L);

    for (int i = base; i <= top; i++) {
        if (i > base)
            fputs("\t", stdout);
        nu__print_value(L, i, 0, 0);
    }
    if (top >= base)
        putchar('\n');
    fflush(stdout);
}

/* --- approval prompt -------------------------------------------------- */

static nu_approve_t nu__repl_prompt(const json_t *request)
{
    char *text = json_dumps(request, JSON_INDENT(2) | JSON_SORT_KEYS);
    char *answer;
    nu_approve_t result = NU_APPROVE_DENY;

    fputs("approval required for:\n", stdout);
    nu__print_escaped(text ? text : "(out of memory)",
                      text ? strlen(text) : 15, NU_DISPLAY_KEEP_NEWLINES);
    free(text);
    fputs("\n", stdout);
    fflush(stdout);

    answer = readline("approve? [y/N] ");
    if (answer != NULL &&
        (strcmp(answer, "y") == 0 || strcmp(answer, "yes") == 0))
        result = NU_APPROVE_APPROVE;
    free(answer);
    puts(result == NU_APPROVE_APPROVE ? "approved" : "denied");
    return result;
}

/* --- completion ------------------------------------------------------- */

static char **nu__cands;
static size_t nu__ncands, nu__cand_next;
static char nu__cand_prefix[256];

static void nu__cands_clear(void)
{
    for (size_t i = 0; i < nu__ncands; i++)
        free(nu__cands[i]);
    free(nu__cands);
    nu__cands = NULL;
    nu__ncands = nu__cand_next = 0;
}

static void nu__cands_add(const char *prefix, const char *sep, const char *name)
{
    size_t len = strlen(prefix) + strlen(sep) + strlen(name) + 1;
    char **grown = realloc(nu__cands, (nu__ncands + 1) * sizeof *grown);
    char *c = malloc(len);

    if (grown == NULL || c == NULL) {
        free(c);
        if (grown != NULL)
            nu__cands = grown;
        return;
    }
    nu__cands = grown;
    snprintf(c, len, "%s%s%s", prefix, sep, name);
    nu__cands[nu__ncands++] = c;
}

/* Add the string keys of the table at the top of the stack. */
static void nu__cands_from_table(lua_State *L, const char *prefix,
                                 const char *sep)
{
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING)
            nu__cands_add(prefix, sep, lua_tostring(L, -2));
        lua_pop(L, 1);
    }
}

static void nu__collect(const char *text)
{
    static const char *const commands[] = { ":profile", ":explain", ":help",
                                            ":quit", NULL };
    lua_State *L = nu__repl_L;
    const char *sep = strrchr(text, ':');
    const char *dot = strrchr(text, '.');
    char object[128];

    nu__cands_clear();
    if (text[0] == ':') {
        for (int i = 0; commands[i] != NULL; i++)
            nu__cands_add("", "", commands[i]);
        return;
    }
    if (dot != NULL && (sep == NULL || dot > sep))
        sep = dot;

    if (sep == NULL || (size_t)(sep - text) >= sizeof object) {
        lua_pushglobaltable(L);
        nu__cands_from_table(L, "", "");
        lua_pop(L, 1);
        return;
    }

    memcpy(object, text, (size_t)(sep - text));
    object[sep - text] = '\0';
    char septext[2] = { *sep, '\0' };
    lua_getglobal(L, object);
    if (lua_istable(L, -1)) {
        nu__cands_from_table(L, object, septext);
    } else if (lua_isuserdata(L, -1) && luaL_getmetafield(L, -1, "methods")) {
        nu__cands_from_table(L, object, septext);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static char *nu__complete_next(const char *text, int state)
{
    if (state == 0) {
        snprintf(nu__cand_prefix, sizeof nu__cand_prefix, "%s", text);
        nu__collect(text);
    }
    while (nu__cand_next < nu__ncands) {
        const char *c = nu__cands[nu__cand_next++];
        if (strncmp(c, nu__cand_prefix, strlen(nu__cand_prefix)) == 0)
            return strdup(c);
    }
    return NULL;
}

static char **nu__complete(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    rl_completion_append_character = '\0';
    return rl_completion_matches(text, nu__complete_next);
}

/* --- commands --------------------------------------------------------- */

static void nu__cmd_profile(const char *name)
{
    nu_profile_t *profile;
    nu_err_t err;

    while (*name == ' ')
        name++;
    if (*name == '\0') {
        puts("usage: :profile NAME|FILE");
        return;
    }
    if (nu_profile_load(&profile, name, NULL, &err) != NU_OK) {
        printf("error: %s\n", err.msg);
        return;
    }
    json_t *j = nu_perm_to_json(nu_profile_perm(profile));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    printf("-- %s (%s)\n", nu_profile_name(profile), nu_profile_source(profile));
    nu__print_escaped(text ? text : "", text ? strlen(text) : 0,
                      NU_DISPLAY_KEEP_NEWLINES);
    putchar('\n');
    free(text);
    json_decref(j);
    nu_profile_free(profile);
}

static void nu__cmd_explain(void)
{
    static const char *const steps[] = {
        "all steps passed", "1 request shape", "2 classification",
        "3 time window and budget", "4 capability level",
        "5 path, command and network rules", "6 static obligations",
        "7 dynamic trifecta gate", "8 check hook", "9 approvals",
        "10 budget and execution", "11 audit",
    };
    nu_decision_t d;

    if (!nu__lua_last_decision(&d)) {
        puts("no call has been made yet");
        return;
    }
    printf("decision:  %s\n", nu_verdict_name(d.verdict));
    printf("operation: %s\n", nu_decision_op_name(&d));
    printf("step:      %s\n", d.step >= 0 && d.step <= 11 ? steps[d.step] : "?");
    if (d.kind != NU_KIND_NONE)
        printf("kind:      %s\n", nu_kind_name(d.kind));
    if (d.reason[0] != '\0') {
        fputs("reason:    ", stdout);
        nu__print_escaped(d.reason, strlen(d.reason), 0);
        putchar('\n');
    }
    if (d.cmd_summary[0] != '\0') {
        fputs("commands:  ", stdout);
        nu__print_escaped(d.cmd_summary, strlen(d.cmd_summary), 0);
        putchar('\n');
    }
    if (d.approval_key[0] != '\0')
        printf("approval:  %s\n", d.approval_key);
}

static void nu__cmd_help(void)
{
    puts("Lua with the nucleus API loaded.  Start with:\n"
         "  pod = nucleus.pod{ profile = \"codegen\", workspace = \".\" }\n"
         "  pod:read(\"README.md\")   pod:run(\"ls\")   pod:explain()\n"
         "Commands:\n"
         "  :profile NAME   print a profile's normalized permission\n"
         "  :explain        why the last call was decided as it was\n"
         "  :help           this text\n"
         "  :quit           leave (or Ctrl-D)\n"
         "Ctrl-C discards the line being typed or stops a running "
         "evaluation.");
}

/* Returns 1 to quit. */
static int nu__repl_command(const char *line)
{
    if (strncmp(line, ":profile", 8) == 0)
        nu__cmd_profile(line + 8);
    else if (strcmp(line, ":explain") == 0)
        nu__cmd_explain();
    else if (strcmp(line, ":help") == 0)
        nu__cmd_help();
    else if (strcmp(line, ":quit") == 0 || strcmp(line, ":q") == 0)
        return 1;
    else
        printf("unknown command '%s' (try :help)\n", line);
    return 0;
}

/* --- interruption ----------------------------------------------------- */

/* Raise the interruption as a Lua error at the next hook event, as lua.c
 * does: the evaluation unwinds and the state stays usable. */
static void nu__stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted (Ctrl-C)");
}

/*
 * The SIGINT handler.  It is installed without SA_RESTART, so at the
 * prompt libedit's read fails with EINTR and readline returns NULL with
 * the flag set.  During an evaluation it arms the stop hook, which is
 * allowed because lua_sethook may be called from a signal handler (Lua 5.4
 * manual, lua_sethook).
 * NOTE: a pod call that is already running is not cancelled, because the
 * pod protocol has no cancel request.  It runs to its end or its timeout,
 * and the evaluation stops right after it returns.
 */
static void nu__on_sigint(int sig)
{
    (void)sig;
    nu__interrupted = 1;
    if (nu__evaluating)
        lua_sethook(nu__repl_L, nu__stop_hook,
                    LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void nu__sigint_install(bool on)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on ? nu__on_sigint : SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

/* --- evaluation ------------------------------------------------------- */

static int nu__incomplete(lua_State *L, int status)
{
    size_t len;
    const char *msg;

    if (status != LUA_ERRSYNTAX)
        return 0;
    msg = lua_tolstring(L, -1, &len);
    return len >= 5 && strcmp(msg + len - 5, "<eof>") == 0;
}

/* Compile buffer as an expression, then as a statement.  Returns the load
 * status; the chunk or the error is on the stack. */
static int nu__compile(lua_State *L, const char *buffer)
{
    size_t len = strlen(buffer) + 8;
    char *expr = malloc(len);
    int status;

    if (expr != NULL) {
        snprintf(expr, len, "return %s", buffer);
        status = luaL_loadbuffer(L, expr, strlen(expr), "=stdin");
        free(expr);
        if (status == LUA_OK)
            return status;
        lua_pop(L, 1);
    }
    return luaL_loadbuffer(L, buffer, strlen(buffer), "=stdin");
}

static char *nu__append_line(char *buffer, const char *line)
{
    size_t old = buffer ? strlen(buffer) : 0;
    char *grown = realloc(buffer, old + strlen(line) + 2);

    if (grown == NULL) {
        free(buffer);
        return NULL;
    }
    if (old > 0)
        grown[old++] = '\n';
    strcpy(grown + old, line);
    return grown;
}

static void nu__history_path(char *out, size_t size)
{
    nu_err_t err;

    if (nu_home_path(NULL, "repl_history", out, size, &err) != NU_OK)
        out[0] = '\0';
}

static void nu__repl_loop(lua_State *L)
{
    char *buffer = NULL;
    char *line;

    for (;;) {
        nu__interrupted = 0;
        line = readline(buffer ? ">> " : "nucleus> ");
        if (line == NULL && nu__interrupted) {
            /* Ctrl-C: drop the statement being typed, keep the session. */
            free(buffer);
            buffer = NULL;
            putchar('\n');
            continue;
        }
        if (line == NULL)
            break;

        if (buffer == NULL && line[0] == ':') {
            add_history(line);
            int quit = nu__repl_command(line);
            free(line);
            if (quit)
                break;
            continue;
        }

        buffer = nu__append_line(buffer, line);
        free(line);
        if (buffer == NULL)
            break;

        int status = nu__compile(L, buffer);
        if (nu__incomplete(L, status)) {
            lua_pop(L, 1);
            continue;
        }
        /* Lines that set credentials carry secret values: keep them out
         * of the history file. */
        if (strstr(buffer, "credentials") == NULL)
            add_history(buffer);

        if (status == LUA_OK) {
            int base = lua_gettop(L);
            nu__evaluating = 1;
            status = nu_lua_host_call(L, 0, LUA_MULTRET);
            nu__evaluating = 0;
            lua_sethook(L, NULL, 0, 0);
            if (status == LUA_OK)
                nu__print_results(L, base);
        } else {
            printf("%s\n", lua_tostring(L, -1));
        }
        lua_settop(L, 0);
        free(buffer);
        buffer = NULL;
    }
    free(buffer);
    putchar('\n');
}

int nu_cmd_repl(int argc, char **argv)
{
    char history[4096];
    lua_State *L;

    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        puts("usage: nucleus repl\n\nAn interactive Lua session with the "
             "nucleus API loaded (type :help inside).");
        return NU_EXIT_OK;
    }

    L = nu_lua_host_new(argc, argv);
    if (L == NULL) {
        fprintf(stderr, "nucleus: repl: out of memory\n");
        return NU_EXIT_FAIL;
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, "nucleus");
    lua_call(L, 1, 1);
    lua_setglobal(L, "nucleus");

    nu__repl_L = L;
    nu__lua_set_prompt(nu__repl_prompt);
    rl_attempted_completion_function = nu__complete;
    rl_basic_word_break_characters = " \t\n\"'`@$><=;|&{(,";

    nu__history_path(history, sizeof history);
    if (history[0] != '\0')
        read_history(history);

    printf("nucleus %s  (Lua with the pod API; :help for commands)\n", NU_VERSION);
    nu__sigint_install(true);
    nu__repl_loop(L);
    nu__sigint_install(false);

    if (history[0] != '\0') {
        write_history(history);
        history_truncate_file(history, 1000);
    }
    nu__lua_set_prompt(NULL);
    nu__cands_clear();
    lua_close(L);
    return NU_EXIT_OK;
}
