-- SHA-256 and HMAC-SHA256 in pure LuaJIT (its `bit` library), for the wrk scripts of `kaquan bench`:
-- shop.lua signs the dev gateway's payment notifications, agent.lua signs open-API requests (KQ1-HMAC-SHA256).
-- wrk has no crypto of its own; a script loads this file from its own directory (wrk loads scripts by path):
--
--   local here = debug.getinfo(1, "S").source:gsub("^@", ""):match("^(.*/)") or "./"
--   local kq = dofile(here .. "kq_hmac.lua")
--   kq.sha256_hex(message)           -- lowercase hex of SHA-256
--   local sign = kq.hmac_hex(key)    -- sign(message): lowercase hex of HMAC-SHA256 keyed with `key`

local bit = require("bit")

local band, bor, bxor, bnot = bit.band, bit.bor, bit.bxor, bit.bnot
local rshift, lshift, ror, tobit, tohex = bit.rshift, bit.lshift, bit.ror, bit.tobit, bit.tohex
local byte, char, rep = string.byte, string.char, string.rep

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}
for i = 1, 64 do K[i] = tobit(K[i]) end

local function u32(value) -- 4 bytes, big-endian
  return char(band(rshift(value, 24), 255), band(rshift(value, 16), 255), band(rshift(value, 8), 255), band(value, 255))
end

local w = {}
local function sha256(message)
  local length = #message
  local message = message .. "\128" .. rep("\0", (64 - (length + 9) % 64) % 64) .. u32(0) .. u32(length * 8)
  local h0, h1, h2, h3 = tobit(0x6a09e667), tobit(0xbb67ae85), tobit(0x3c6ef372), tobit(0xa54ff53a)
  local h4, h5, h6, h7 = tobit(0x510e527f), tobit(0x9b05688c), tobit(0x1f83d9ab), tobit(0x5be0cd19)
  for chunk = 1, #message, 64 do
    for i = 0, 15 do
      local b1, b2, b3, b4 = byte(message, chunk + 4 * i, chunk + 4 * i + 3)
      w[i] = bor(lshift(b1, 24), lshift(b2, 16), lshift(b3, 8), b4)
    end
    for i = 16, 63 do
      local x, y = w[i - 15], w[i - 2]
      local s0 = bxor(ror(x, 7), ror(x, 18), rshift(x, 3))
      local s1 = bxor(ror(y, 17), ror(y, 19), rshift(y, 10))
      w[i] = tobit(w[i - 16] + s0 + w[i - 7] + s1)
    end
    local a, b, c, d, e, f, g, h = h0, h1, h2, h3, h4, h5, h6, h7
    for i = 0, 63 do
      local t1 = tobit(h + bxor(ror(e, 6), ror(e, 11), ror(e, 25)) + bxor(band(e, f), band(bnot(e), g)) + K[i + 1] + w[i])
      local t2 = tobit(bxor(ror(a, 2), ror(a, 13), ror(a, 22)) + bxor(band(a, b), band(a, c), band(b, c)))
      h, g, f, e, d, c, b, a = g, f, e, tobit(d + t1), c, b, a, tobit(t1 + t2)
    end
    h0, h1, h2, h3 = tobit(h0 + a), tobit(h1 + b), tobit(h2 + c), tobit(h3 + d)
    h4, h5, h6, h7 = tobit(h4 + e), tobit(h5 + f), tobit(h6 + g), tobit(h7 + h)
  end
  return u32(h0) .. u32(h1) .. u32(h2) .. u32(h3) .. u32(h4) .. u32(h5) .. u32(h6) .. u32(h7)
end

local function hex(digest)
  local out = {}
  for i = 1, #digest do out[i] = tohex(byte(digest, i), 2) end
  return table.concat(out)
end

local function padded_key(key, pad)
  if #key > 64 then key = sha256(key) end
  key = key .. rep("\0", 64 - #key)
  local out = {}
  for i = 1, 64 do out[i] = char(bxor(byte(key, i), pad)) end
  return table.concat(out)
end

local M = {}

function M.sha256_hex(message)
  return hex(sha256(message))
end

-- A signer for one key: the pads are worked out once, each message then costs two SHA-256 runs.
function M.hmac_hex(key)
  local inner_pad, outer_pad = padded_key(key, 0x36), padded_key(key, 0x5c)
  return function(message)
    return hex(sha256(outer_pad .. sha256(inner_pad .. message)))
  end
end

return M
