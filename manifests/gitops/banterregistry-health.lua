-- Argo CD health check for banterpacks.io/v1alpha1 BanterRegistry.
-- Healthy when the operator has observed the current generation and reports
-- Ready=True; Degraded when a condition names a problem only the user can fix
-- (InvalidSpec, AdmissionRefused, AuthSecretMissing) or an apply that keeps
-- failing (ApplyFailed); Progressing otherwise.
local hs = {}
hs.status = "Progressing"
hs.message = "Waiting for banter-operator to report status"
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for banter-operator to observe generation " .. tostring(generation)
  return hs
end
local ready = nil
for _, c in ipairs(obj.status.conditions) do
  if c.status == "False" and (c.reason == "InvalidSpec" or c.reason == "AdmissionRefused" or c.reason == "ApplyFailed" or c.reason == "AuthSecretMissing") then
    hs.status = "Degraded"
    hs.message = c.type .. " " .. c.reason .. ": " .. (c.message or "")
    return hs
  end
  if c.type == "Ready" then
    ready = c
  end
end
if ready == nil then
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
return hs
