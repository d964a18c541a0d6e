-- wrk script for tools/bench's mixed case: a page-like mix on one vhost, three 1 KiB objects for
-- every 100 KiB one, in a fixed order so that every server gets the same sequence.
local paths = { "/1k.html", "/1k.html", "/100k.html", "/1k.html" }
local i = 0

request = function()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
