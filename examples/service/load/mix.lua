-- The load test's request mix (wrk): 80 % product by ID, 15 % a page of a category
-- (the cached query), 5 % a stock update (a write: invalidates caches, feeds the
-- dirty stream). IDs are spread over the seeded catalogue.
local products = tonumber(os.getenv("LOAD_PRODUCTS") or "10000")
math.randomseed(os.time())

request = function()
  local r = math.random(100)
  local id = math.random(products)
  if r <= 80 then
    return wrk.format("GET", "/products/" .. id)
  elseif r <= 95 then
    return wrk.format("GET", "/products?category=c" .. (id % 10) .. "&size=20&page=" .. math.random(5))
  else
    return wrk.format("PATCH", "/products/" .. id, {["Content-Type"] = "application/json"},
      '{"stock":' .. math.random(100) .. '}')
  end
end
