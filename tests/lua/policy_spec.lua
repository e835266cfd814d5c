-- Lattice values, profile loading and decisions from Lua (nucleus.core
-- and the nucleus wrappers).
local core = require "nucleus.core"
local nucleus = require "nucleus"

local source_dir = os.getenv("NU_SOURCE_DIR") or "."

-- Deterministic generator of random profiles, edge cases included.
local function generator(seed)
  local state = seed
  local function rand(n)
    state = (state * 1103515245 + 12345) % 2147483648
    return state % n
  end
  local levels = { "never", "low_risk", "always" }
  local ops = { "read_files", "write_files", "edit_files", "run_bash",
                "glob_search", "grep_search", "web_search", "web_fetch",
                "git_commit", "git_push", "create_pr", "manage_pods" }
  local globs = { "src/**", "docs/*", "*.md", "tests/", ".env*", "build/" }
  local rules = { "git status", "git push", "make", "npm test", "rm -rf" }

  local function set(pool)
    local r = rand(4)
    if r == 0 then return core.ALL end
    local out = {}
    for _, item in ipairs(pool) do
      if rand(2) == 0 then out[#out + 1] = item end
    end
    return out
  end

  return function()
    local caps = {}
    for _, op in ipairs(ops) do caps[op] = levels[rand(3) + 1] end
    local approvals = {}
    for _, op in ipairs(ops) do
      if rand(5) == 0 then approvals[#approvals + 1] = op end
    end
    local budget = {}
    if rand(2) == 0 then budget.usd = rand(20) end
    if rand(2) == 0 then budget.tool_calls = rand(1000) end
    return core.profile {
      capabilities = caps,
      approvals = approvals,
      paths = { allow = set(globs), block = set(globs), write_block = set(globs) },
      commands = { allow = set(rules), block = set(rules) },
      network = { allow = set({ "10.0.0.0/8:443", "192.168.1.1:22" }),
                  domains = set({ "example.org", "*.example.com" }) },
      budget = budget,
      time = rand(2) == 0 and { ttl = rand(3600) + 1 } or nil,
    }
  end
end

local function sample(n, seed)
  local gen = generator(seed)
  local out = {}
  for i = 1, n do out[i] = gen() end
  -- Meets and joins of the samples give pairs that are ordered.
  for i = 1, n // 4 do
    out[#out + 1] = out[i] & out[i + 1]
    out[#out + 1] = out[i] | out[i + 2]
  end
  out[#out + 1] = core.top()
  out[#out + 1] = core.bottom()
  return out
end

describe("nucleus.core lattice values", function()
  local values = sample(40, 7)

  it("meet and join are commutative", function()
    for _, a in ipairs(values) do
      for _, b in ipairs(values) do
        assert.is_true((a & b) == (b & a))
        assert.is_true((a | b) == (b | a))
      end
    end
  end)

  it("meet and join are associative", function()
    for i = 1, #values - 2 do
      local a, b, c = values[i], values[i + 1], values[i + 2]
      assert.is_true(((a & b) & c) == (a & (b & c)))
      assert.is_true(((a | b) | c) == (a | (b | c)))
    end
  end)

  it("meet and join are idempotent and absorb each other", function()
    for _, a in ipairs(values) do
      assert.is_true((a & a) == a)
      assert.is_true((a | a) == a)
      for _, b in ipairs(values) do
        assert.is_true((a & (a | b)) == a)
        assert.is_true((a | (a & b)) == a)
      end
    end
  end)

  it("meet is a lower bound and join an upper bound", function()
    for _, a in ipairs(values) do
      for _, b in ipairs(values) do
        assert.is_true((a & b) <= a)
        assert.is_true((a & b) <= b)
        assert.is_true(a <= (a | b))
        assert.is_true(b <= (a | b))
      end
    end
  end)

  it("meet is the greatest lower bound and join the least upper bound", function()
    local checked = 0
    for i = 1, #values do
      for j = 1, #values do
        local a, b = values[i], values[j]
        local meet, join = a & b, a | b
        for _, c in ipairs(values) do
          if c <= a and c <= b then
            assert.is_true(c <= meet)
            checked = checked + 1
          end
          if a <= c and b <= c then
            assert.is_true(join <= c)
          end
        end
      end
    end
    assert.is_true(checked > #values)
  end)

  it("orders bottom below top", function()
    assert.is_true(core.bottom() <= core.top())
    assert.is_false(core.top() <= core.bottom())
    assert.is_true(core.bottom() < core.top())
  end)

  it("prints canonical JSON that parses back to an equal value", function()
    for _, a in ipairs(values) do
      local text = tostring(a)
      assert.is_equal("{", text:sub(1, 1))
      assert.is_true(core.from_json(text) == a:normalize())
    end
  end)

  it("offers the named functions as well as the operators", function()
    local a, b = values[1], values[2]
    assert.is_true(core.meet(a, b) == (a & b))
    assert.is_true(core.join(a, b) == (a | b))
    assert.is_equal(core.leq(a, b), a <= b)
    assert.is_true(a:meet(b) == (a & b))
  end)

  it("rejects operands that are not lattice values", function()
    assert.has_error(function() return core.top() & {} end)
    assert.has_error(function() return core.meet(core.top(), "x") end)
  end)
end)

describe("nucleus.profile", function()
  it("keeps name and description", function()
    local p = core.profile { name = "n", description = "d" }
    assert.is_equal("n", p.name)
    assert.is_equal("d", p.description)
  end)

  it("treats unnamed capabilities as never", function()
    local p = core.profile { capabilities = { read_files = "always" } }
    local json = tostring(p)
    assert.truthy(json:find('"read_files":"always"', 1, true))
    assert.truthy(json:find('"write_files":"never"', 1, true))
  end)

  it("rejects unknown keys naming them", function()
    local ok, err = pcall(core.profile, { name = "x", colour = "red" })
    assert.is_false(ok)
    assert.truthy(err:find("unknown key 'colour'", 1, true))
    ok, err = pcall(core.profile, { paths = { allow = {}, deny = {} } })
    assert.is_false(ok)
    assert.truthy(err:find("unknown key 'paths.deny'", 1, true))
  end)

  it("rejects bad levels, operations and types", function()
    assert.has_error(function() core.profile { capabilities = { read_files = "maybe" } } end)
    assert.has_error(function() core.profile { capabilities = { fly = "always" } } end)
    assert.has_error(function() core.profile { paths = { allow = { 1 } } } end)
    assert.has_error(function() core.profile { budget = { usd = -1 } } end)
    assert.has_error(function() core.profile { time = { ttl = 0 } } end)
    assert.has_error(function() core.profile { approvals = { "teleport" } } end)
    assert.has_error(function() core.profile { check = "not a function" } end)
  end)

  it("accepts nested pattern lists such as nucleus.SENSITIVE", function()
    local p = core.profile { paths = { allow = core.ALL, block = { core.SENSITIVE, "x/" } } }
    assert.truthy(tostring(p):find('"x/"', 1, true))
    assert.truthy(tostring(p):find('.ssh/', 1, true))
  end)

  it("applies the trifecta closure", function()
    local p = core.profile {
      capabilities = { read_files = "always", web_fetch = "always", git_push = "always" },
    }
    assert.truthy(tostring(p):find('"obligations":["git_push"]', 1, true))
  end)
end)

describe("nucleus.core profiles and decisions", function()
  it("lists and loads the built-in profiles", function()
    local names = core.builtins()
    assert.is_true(#names > 0)
    for _, name in ipairs(names) do
      local handle = core.load_profile(name)
      assert.is_equal("builtin:" .. name, handle.source)
      assert.is_true(handle:perm() <= core.top())
    end
  end)

  it("decides with a built-in profile", function()
    local d = nucleus.decide("codegen", { tool = "read", path = "src/main.c" })
    assert.is_equal("allow", d.decision)
    d = nucleus.decide("codegen", { tool = "read", path = ".ssh/id_rsa" })
    assert.is_equal("deny", d.decision)
    assert.is_equal("path_denied", d.kind)
  end)

  it("runs the check hook of a profile built in Lua", function()
    local p = core.profile {
      capabilities = { read_files = "always" },
      paths = { allow = core.ALL },
      check = function(call, ctx)
        if call.path == "deny.txt" then return "deny", "no" end
        if call.path == "ask.txt" then return "approval", "ask first" end
        if call.path == "bad.txt" then return 42 end
      end,
    }
    assert.is_equal("allow", core.eval(p, { tool = "read", path = "a.txt" }).decision)
    local d = core.eval(p, { tool = "read", path = "deny.txt" })
    assert.is_equal("deny", d.decision)
    assert.truthy(d.reason:find("no", 1, true))
    d = core.eval(p, { tool = "read", path = "ask.txt" })
    assert.is_equal("approval_required", d.decision)
    assert.truthy(d.approval_key:match("^read_files:%x+$"))
    d = core.eval(p, { tool = "read", path = "bad.txt" })
    assert.is_equal("policy_error", d.kind)
  end)

  it("hands the hook a read-only ctx with the session facts", function()
    local seen
    local p = core.profile {
      capabilities = { read_files = "always" },
      paths = { allow = core.ALL },
      budget = { tool_calls = 10 },
      check = function(call, ctx)
        seen = { private = ctx.exposure.private, calls = ctx.budget.tool_calls,
                 time = ctx.time }
        ctx.time = 0
      end,
    }
    local d = core.eval(p, { tool = "read", path = "a" },
                        { exposure = "private", now = 1234, spent = { tool_calls = 3 } })
    assert.is_equal("policy_error", d.kind)
    assert.is_true(seen.private)
    assert.is_equal(7, seen.calls)
    assert.is_equal(1234, seen.time)
  end)

  it("reports load errors with file and line", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("-- comment\nreturn nucleus.profile {\n  wings = 2,\n}\n")
    f:close()
    local ok, err = pcall(core.load_profile, path)
    os.remove(path)
    assert.is_false(ok)
    assert.truthy(err:find(path .. ":2: unknown key 'wings'", 1, true))
  end)

  it("loads the canonical JSON it prints", function()
    local path = os.tmpname() .. ".json"
    local f = assert(io.open(path, "w"))
    f:write(nucleus.show("codegen"))
    f:close()
    local handle = core.load_profile(path)
    os.remove(path)
    assert.is_true(handle:perm() == core.load_profile("codegen"):perm())
  end)

  it("loads profile files from the source tree", function()
    local handle = core.load_profile(source_dir .. "/policies/default.lua")
    assert.is_equal("default", handle.name)
  end)
end)
