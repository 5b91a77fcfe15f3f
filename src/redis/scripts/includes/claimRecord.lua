--[[
  The claim record of a held parent, kept in `claims` while it is leased or waiting to retry:
  "token|score|due|generation" (the claim's fencing token, its score as claimed, its `due` and the
  generation of its last mark the recompute covers). Every script reads and writes it here.
]]

-- A new record.
local function claimRecord(token, score, due, generation)
  return token .. '|' .. score .. '|' .. (due or '') .. '|' .. (generation or '')
end

-- Whether `record` (an HGET reply) is the claim of `token`.
local function claimedBy(record, token)
  return record and string.sub(record, 1, #token + 1) == token .. '|'
end

-- The fields of a record: token, score (a number, or nil), due ('' when none), generation.
local function claimFields(record)
  local token, score, due, generation = string.match(record, '^([^|]*)|([^|]*)|([^|]*)|(.*)$')
  return token, tonumber(score), due or '', generation or ''
end
