-- database_client: query an operator-run database.
--
-- The agent runs database clients from a finite list against the
-- database ports of private address ranges, and writes results under
-- out/.  The operator vouches for those addresses (network.trusted), so
-- sending queries there is not exfiltration.  Narrow network.allow to
-- your database's address before use.
-- NOTE: psql "\!" and sqlite3 ".shell" run shell commands from inside the
-- client, where no command rule can see them; the pod's isolation is what
-- contains them.
return nucleus.profile {
  name = "database_client",
  description = "run psql, mysql, sqlite3 against private-range database ports; results under out/",
  capabilities = {
    read_files = "always", glob_search = "always", grep_search = "always",
    write_files = "low_risk", run_bash = "low_risk",
  },
  paths = { allow = { "queries/", "out/", "*.sql" }, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = {
    allow = { "psql", "mysql", "sqlite3", "pg_dump --schema-only", "ls", "cat", "head", "wc" },
    block = {},
  },
  network = {
    allow = {
      "10.0.0.0/8:5432", "172.16.0.0/12:5432", "192.168.0.0/16:5432",
      "10.0.0.0/8:3306", "172.16.0.0/12:3306", "192.168.0.0/16:3306",
    },
    domains = {},
    trusted = {
      "10.0.0.0/8:5432", "172.16.0.0/12:5432", "192.168.0.0/16:5432",
      "10.0.0.0/8:3306", "172.16.0.0/12:3306", "192.168.0.0/16:3306",
    },
  },
  budget = { usd = 3, input_tokens = 1000000, output_tokens = 100000, tool_calls = 300 },
  time = { ttl = 2 * 3600 },
  approvals = {},
}
