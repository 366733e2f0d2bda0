/**
 * CPU amounts as the platforms write them: Kubernetes quantities ("2", "1500m", "0.5") and Azure's
 * plain numbers of cores. Used by the constructs to fill in `instanceVcpu` and check the 2-vCPU rule.
 */
const CPU_QUANTITY = /^(\d+(?:\.\d+)?|\.\d+)(m?)$/;

/** vCPUs of a CPU quantity, or undefined when the text is not one. */
export function parseCpuQuantity(quantity: string | number): number | undefined {
  if (typeof quantity === 'number') return Number.isFinite(quantity) && quantity > 0 ? quantity : undefined;
  const match = CPU_QUANTITY.exec(quantity.trim());
  if (!match) return undefined;
  const value = Number(match[1]);
  const cores = match[2] === 'm' ? value / 1000 : value;
  return cores > 0 ? cores : undefined;
}
