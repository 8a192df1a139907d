-- wrk script: the same form POST with HTTP Basic client authentication on every request, and a check of every
-- answer, so that a run of errors cannot pass for a fast one. Used by scripts/load.sh (cc, introspect) and
-- scripts/peer-bench.sh (the same requests to oidc-provider). Parameters come from the environment:
--
--   FORM_BODY    the urlencoded body, e.g. grant_type=client_credentials&scope=roles
--   FORM_BASIC   base64 of client_id:client_secret
--   FORM_EXPECT  optional: a string every answer's body must contain (e.g. "active":true), else it counts
--                as wrong even when its status is 200
--
-- done() prints one line, parsed by scripts/peer-bench.sh:
--   checked: answers=N non200=N wrong=N
-- followed by the statuses seen and the first unexpected body, if any.
local body = os.getenv("FORM_BODY") or error("FORM_BODY is not set")
local basic = os.getenv("FORM_BASIC") or error("FORM_BASIC is not set")
local expect = os.getenv("FORM_EXPECT")
if expect == "" then expect = nil end

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. basic

local threads = {}
setup = function(thread) table.insert(threads, thread) end

-- Per thread (each has its own Lua state); read back by done() through thread:get.
answers, non200, wrong, statuses, first_bad = 0, 0, 0, "", ""
local seen = {}
response = function(status, headers, body)
  answers = answers + 1
  if status ~= 200 then
    non200 = non200 + 1
    seen[status] = (seen[status] or 0) + 1
    local parts = {}
    for code, n in pairs(seen) do table.insert(parts, code .. "x" .. n) end
    statuses = table.concat(parts, " ")
    if first_bad == "" then first_bad = status .. " " .. body:sub(1, 300) end
  elseif expect and not body:find(expect, 1, true) then
    wrong = wrong + 1
    if first_bad == "" then first_bad = status .. " " .. body:sub(1, 300) end
  end
end

done = function(summary, latency, requests)
  local a, n, w, s, f = 0, 0, 0, {}, ""
  for _, t in ipairs(threads) do
    a = a + t:get("answers")
    n = n + t:get("non200")
    w = w + t:get("wrong")
    local st = t:get("statuses")
    if st ~= "" then table.insert(s, st) end
    if f == "" then f = t:get("first_bad") end
  end
  print(string.format("checked: answers=%d non200=%d wrong=%d", a, n, w))
  if n > 0 then print("  non-200 statuses: " .. table.concat(s, " ")) end
  if expect and w > 0 then print("  200 answers without " .. expect .. ": " .. w) end
  if f ~= "" then print("  first unexpected answer: " .. f) end
end
