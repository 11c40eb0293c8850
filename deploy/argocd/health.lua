-- Argo CD health for rotator.dev resources (ServicePrincipalSecret, DatabricksSecretBinding).
-- Derived only from status.conditions and observedGeneration, as kstatus does:
--   Stalled=True                      -> Degraded (a human must act; message says what)
--   status older than the spec        -> Progressing (the operator has not seen the change)
--   Reconciling=True                  -> Progressing (a rotation or sync is under way)
--   Ready=True                        -> Healthy
--   Ready=False                       -> Degraded
--   no conditions yet                 -> Progressing
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
local byType = {}
for _, c in ipairs(obj.status.conditions) do
  byType[c.type] = c
end
local stalled = byType["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message or stalled.reason or "Stalled"
  return hs
end
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "The operator has not observed generation " .. tostring(generation) .. " yet"
  return hs
end
local reconciling = byType["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.message or reconciling.reason or "Reconciling"
  return hs
end
local ready = byType["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = ready.message or ready.reason or "Not ready"
  return hs
end
return hs
