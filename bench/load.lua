-- wrk script for bench/run.sh: one request shape per scenario, chosen by BENCH_SCENARIO.
-- BENCH_DIR holds what the seeder wrote (token, token_id, user_ids, small_group, big_group);
-- BENCH_BASE is the SCIM base path (scimd's by default; bench/run.sh --peer sets the peer's).

local scenario = os.getenv("BENCH_SCENARIO")
local dir = os.getenv("BENCH_DIR")
local base = os.getenv("BENCH_BASE") or "/scim/v2/bench"
-- How group_add_member removes a member: "value" (the form Entra ID sends, a value list) or
-- "filter" (members[value eq "..."], the only form some servers take).
local remove_by_filter = os.getenv("BENCH_REMOVE") == "filter"
local counter = 0

local function read(name)
  local f = io.open(dir .. "/" .. name)
  if not f then return nil end
  local s = f:read("*a"):gsub("%s+$", "")
  f:close()
  return s
end

function setup(thread)
  tid = (tid or 0) + 1
  thread:set("tid", tid)
end

function init(args)
  math.randomseed(os.time() * 1000 + (tid or 0))
  token = read("token")
  if scenario:sub(1, 8) ~= "ceiling_" then
    -- The ids stay in the file (fixed-width lines) and each pick reads one line at a random
    -- offset. Holding 37 MB of ids in the Lua heap (a million users) made LuaJIT's collector
    -- let the heap grow by as much again between cycles, map fresh memory and fault it in:
    -- 180,000 page faults and 40 % more CPU in wrk per 6 s, and a p99 tail that was the
    -- load generator's, not the server's.
    ids = io.open(dir .. "/user_ids")
    ids:setvbuf("no")
    width = #ids:read("*l") + 1
    id_count = math.floor(ids:seek("end") / width)
  end
  users = tonumber(os.getenv("BENCH_USERS"))
  group = read(os.getenv("BENCH_GROUP") or "small_group")
  token_id = read("token_id")
  local wrong = string.rep("0", 64)
  if scenario == "auth_fail_secret" then
    token = "scimd_" .. token_id .. "_" .. wrong
  elseif scenario == "auth_fail_unknown" then
    token = "scimd_0000000000000000_" .. wrong
  end
  headers = {["Authorization"] = "Bearer " .. (token or ""), ["Content-Type"] = "application/scim+json"}
end

-- The id on a random line, from line `from` (1-based, default 1) to the last.
local function pick(from)
  from = from or 1
  ids:seek("set", (math.random(from, id_count) - 1) * width)
  return ids:read(width - 1)
end

-- group_add_member: a user in neither group (the small group holds the first 100 lines, the
-- big group users of its own), added by one request and removed by the next one of this
-- thread, so every request changes a membership and the group keeps its size; re-adding
-- members that are already there would measure requests that change nothing.
local outsider

request = function()
  counter = counter + 1
  if scenario == "get_user" or scenario == "auth_fail_secret" or scenario == "auth_fail_unknown" then
    return wrk.format("GET", base .. "/Users/" .. pick(), headers)
  elseif scenario == "auth_fail_guess" then
    -- A different wrong secret every time for the real token id: someone guessing.
    local guess = ""
    for _ = 1, 8 do guess = guess .. string.format("%08x", math.random(0, 0x7fffffff)) end
    local h = {["Authorization"] = "Bearer scimd_" .. token_id .. "_" .. guess}
    return wrk.format("GET", base .. "/Users/" .. pick(), h)
  elseif scenario == "filter_username" then
    local n = math.random(users) - 1
    return wrk.format("GET", base .. "/Users?filter=userName%20eq%20%22user" .. n .. "%40contoso.com%22", headers)
  elseif scenario == "filter_email" then
    -- Each seeded user's work email is its userName (bench/ldap.sh, beside LDAP's (mail=...)).
    local n = math.random(users) - 1
    return wrk.format("GET", base .. "/Users?filter=emails.value%20eq%20%22user" .. n .. "%40contoso.com%22", headers)
  elseif scenario == "filter_external_id" then
    local n = math.random(users) - 1
    return wrk.format("GET", base .. "/Users?filter=externalId%20eq%20%22" .. string.format("%08x", n) .. "-8d2a-4f8e-bf98-7363c4aed4ef%22", headers)
  elseif scenario == "page_middle" then
    return wrk.format("GET", base .. "/Users?startIndex=" .. math.floor(users / 2) .. "&count=100", headers)
  elseif scenario == "list_page" then
    return wrk.format("GET", base .. "/Users?startIndex=" .. math.random(math.max(users - 99, 1)) .. "&count=100", headers)
  elseif scenario == "create_user" then
    local name = string.format("load-%d-%d-%d@contoso.com", tid or 0, counter, math.random(1e9))
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],'
      .. '"userName":"' .. name .. '","externalId":"' .. name .. '","active":true,"displayName":"Load User",'
      .. '"emails":[{"primary":true,"type":"work","value":"' .. name .. '"}],'
      .. '"name":{"givenName":"Load","familyName":"User"},'
      .. '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R&D","employeeNumber":"' .. counter .. '"}}'
    return wrk.format("POST", base .. "/Users", headers, body)
  elseif scenario == "patch_user" then
    local v = tostring(math.random(1e9))
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":['
      .. '{"op":"Replace","path":"title","value":"T' .. v .. '"},'
      .. '{"op":"Replace","path":"name.familyName","value":"F' .. v .. '"}]}'
    return wrk.format("PATCH", base .. "/Users/" .. pick(), headers, body)
  elseif scenario == "group_add_member" then
    local op = "Remove"
    if counter % 2 == 1 then
      op = "Add"
      outsider = pick(math.min(101, id_count))
    end
    local change = '{"op":"' .. op .. '","path":"members","value":[{"value":"' .. outsider .. '"}]}'
    if op == "Remove" and remove_by_filter then
      change = '{"op":"Remove","path":"members[value eq \\"' .. outsider .. '\\"]"}'
    end
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":['
      .. change .. ']}'
    return wrk.format("PATCH", base .. "/Groups/" .. group, headers, body)
  elseif scenario == "ceiling_get" then
    return wrk.format("GET", "/docs/" .. (math.random(users) - 1))
  elseif scenario == "ceiling_page" then
    return wrk.format("GET", "/docs?start=" .. math.random(math.max(users - 99, 1)))
  elseif scenario == "ceiling_update" then
    local v = tostring(math.random(1e9))
    return wrk.format("PATCH", "/docs/" .. (math.random(users) - 1), {["Content-Type"] = "application/json"},
      '{"title":"T' .. v .. '","familyName":"F' .. v .. '"}')
  elseif scenario == "ceiling_insert" then
    return wrk.format("POST", "/docs", {["Content-Type"] = "application/json"},
      '{"userName":"load-' .. (tid or 0) .. '-' .. counter .. '","displayName":"Load User","active":true}')
  end
end
