-- nucleus: the Lua API for orchestrators.
--
--   local nucleus = require "nucleus"
--   local pod = nucleus.pod{ profile = "codegen", workspace = "/path/to/repo" }
--   local r, err = pod:read("README.md")
--
-- Everything lives in the C module nucleus.core; this file only loads it,
-- so `nucleus run` (which builds the module in) and a plain lua5.4 with
-- LUA_CPATH pointing at build/<preset>/lua/?.so see the same API.
return require "nucleus.core"
