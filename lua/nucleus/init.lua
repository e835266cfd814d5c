-- nucleus: the Lua API.
--
-- A thin layer over the C module nucleus.core.  Everything the C module
-- exports is re-exported unchanged (profile, ALL, SENSITIVE, AUTORUN,
-- meet, join, leq, from_json, top, bottom, load_profile, eval,
-- builtins, and the pod API: nucleus.pod); this file adds conveniences
-- written in Lua:
--
--   nucleus.decide(profile, call [, opts]) -> decision table
--       profile is a built-in name, a file path, a handle from
--       load_profile or a lattice value.
--   nucleus.show(profile) -> canonical JSON of its permission
local core = require "nucleus.core"

local M = {}
for name, value in pairs(core) do
  M[name] = value
end

local function is_handle(value)
  return type(value) == "userdata" and value.eval ~= nil and value.source ~= nil
end

function M.decide(profile, call, opts)
  if type(profile) == "string" then
    profile = core.load_profile(profile)
  end
  if is_handle(profile) then
    return profile:eval(call, opts)
  end
  return core.eval(profile, call, opts)
end

function M.show(profile)
  if type(profile) == "string" then
    profile = core.load_profile(profile)
  end
  if is_handle(profile) then
    profile = profile:perm()
  end
  return tostring(profile)
end

return M
