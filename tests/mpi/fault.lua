-- fault.lua WHEN - rank 1 raises a Lua error (WHEN = "before_init" or "in_step") while the
-- other ranks go on into collectives: the job must end quickly and non-zero (tests/mpi/run.sh).
local lunet = lunet or require "lunet"
local dist = lunet.distributed
local when = arg[1] or "in_step"
local rank = tonumber(os.getenv("OMPI_COMM_WORLD_RANK") or "0")
if when == "before_init" and rank == 1 then error("rank 1 gives up (" .. when .. ")") end
dist.init_process_group{backend = "mpi"}
local t = lunet.ones(4)
for step = 1, 3 do
  if step == 2 and dist.get_rank() == 1 then error("rank 1 gives up (" .. when .. ")") end
  dist.all_reduce(t)
end
print("unreachable: rank " .. dist.get_rank() .. " finished")
