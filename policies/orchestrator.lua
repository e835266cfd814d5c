-- orchestrator: a pod that plans and delegates to child pods.
--
-- It manages pods and reads the workspace to plan; it runs no commands
-- and writes nothing itself.  Children get "parent & requested", so this
-- profile's large budget is the pool their budgets are carved from.
return nucleus.profile {
  name = "orchestrator",
  description = "plan and delegate: manage child pods and read the workspace; no commands or writes",
  capabilities = {
    manage_pods = "always",
    read_files = "always", glob_search = "always", grep_search = "always",
  },
  paths = { allow = nucleus.ALL, block = nucleus.SENSITIVE, write_block = nucleus.AUTORUN },
  commands = { allow = {}, block = {} },
  network = { allow = {}, domains = {}, trusted = {} },
  budget = { usd = 100, input_tokens = 20000000, output_tokens = 2000000, tool_calls = 20000 },
  time = { ttl = 24 * 3600 },
  approvals = {},
}
