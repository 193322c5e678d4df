// Human labels of the contracts' enums (the values come from the generated code).
import {
  Commitment,
  CompensationMix,
  Importance,
  Role,
  StartupStage,
  Visibility,
  WorkMode,
} from "./gen/openhr/profile/v1/profile_pb";

export const ROLES: [Role, string][] = [
  [Role.FOUNDER, "Founder"],
  [Role.TECHNICAL_COFOUNDER, "Technical co-founder"],
  [Role.BUSINESS_COFOUNDER, "Business co-founder"],
  [Role.PRODUCT_COFOUNDER, "Product co-founder"],
  [Role.DESIGN_COFOUNDER, "Design co-founder"],
  [Role.EARLY_ENGINEER, "Early engineer"],
  [Role.EARLY_EMPLOYEE, "Early employee"],
  [Role.ADVISOR, "Advisor"],
];

export const STAGES: [StartupStage, string][] = [
  [StartupStage.IDEA, "Idea"],
  [StartupStage.PROTOTYPE, "Prototype"],
  [StartupStage.PRE_SEED, "Pre-seed"],
  [StartupStage.SEED, "Seed"],
  [StartupStage.SERIES_A, "Series A"],
  [StartupStage.GROWTH, "Growth"],
];

export const COMMITMENTS: [Commitment, string][] = [
  [Commitment.UNSPECIFIED, "Not stated"],
  [Commitment.FULL_TIME, "Full time"],
  [Commitment.PART_TIME, "Part time"],
  [Commitment.ADVISORY, "Advisory"],
];

export const COMPENSATION: [CompensationMix, string][] = [
  [CompensationMix.UNSPECIFIED, "Not stated"],
  [CompensationMix.EQUITY_ONLY, "Equity only"],
  [CompensationMix.EQUITY_HEAVY, "Mostly equity"],
  [CompensationMix.BALANCED, "Balanced"],
  [CompensationMix.SALARY_HEAVY, "Mostly salary"],
  [CompensationMix.SALARY_ONLY, "Salary only"],
];

export const WORK_MODES: [WorkMode, string][] = [
  [WorkMode.REMOTE, "Remote"],
  [WorkMode.IN_PERSON, "In person"],
  [WorkMode.HYBRID, "Hybrid"],
];

export const IMPORTANCE: [Importance, string][] = [
  [Importance.NICE_TO_HAVE, "Nice to have"],
  [Importance.MUST_HAVE, "Must have"],
];

export const VISIBILITY: [Visibility, string][] = [
  [Visibility.PUBLIC, "Public: any signed-in member, and offered as a match"],
  [Visibility.MATCHES_ONLY, "Matches only: offered as a match card, details for matches only"],
  [Visibility.PRIVATE, "Private: only you; not offered as a match"],
];

export const PROFICIENCY: [number, string][] = [
  [1, "1 · Beginner"],
  [2, "2 · Working knowledge"],
  [3, "3 · Proficient"],
  [4, "4 · Advanced"],
  [5, "5 · Expert"],
];

export function label<T>(options: [T, string][], value: T): string {
  return options.find(([v]) => v === value)?.[1] ?? "";
}
