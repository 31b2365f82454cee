"""Generate the demo catalog shipped in data/demo/ (items.csv, interactions.csv).

A synthetic but real-looking shop: about 5,000 items under a three-level
taxonomy (top category > subcategory > leaf, e.g. Beauty > Skin Care >
Moisturizer) and about 5,000 users with chronological interaction sequences.

Item text comes from per-category vocabularies: the product noun belongs to the
leaf, the qualifiers to the subcategory, adjectives/features to the top category;
each leaf is served by 3 of its top category's 8 brands. Items of one leaf therefore share most of their words (close in
embedding space) and items of different top categories share almost none.

Users have 1-3 favourite leaves. Each next item stays in the last item's leaf,
moves to a sibling leaf, returns to a favourite, wanders in the same top
category, or explores a globally popular item (probabilities in TRANSITIONS);
within a leaf items are drawn with a Zipf-like popularity. So next-item
retrieval is learnable (taxonomy + popularity) but not trivial.

Pure Python + numpy, seeded with numpy's default_rng; re-running it re-creates
the shipped files byte for byte:

    python data/demo/generate.py            # writes data/demo/*.csv
    python data/demo/generate.py --out DIR  # writes DIR/*.csv
"""

from __future__ import annotations

import argparse
import bisect
import csv
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_SEED = 20240601
N_ITEMS = 5000
N_USERS = 5000
MIN_SEQ, MAX_SEQ = 5, 50
MIN_ITEMS_PER_LEAF = 20
# Interactions fall between 2019-01-01 and 2024-06-30 (UTC unix seconds).
T_START, T_END = 1546300800, 1719705600
MEAN_GAP_S = 3 * 86400

# Next-item moves, tried in this order with these probabilities (the rest: explore).
TRANSITIONS = (
    ("same_leaf", 0.35),
    ("sibling_leaf", 0.20),
    ("favourite_leaf", 0.20),
    ("same_top", 0.10),
)

# Taxonomy and vocabulary. Per top category: brands, adjectives, title variants,
# description features, uses, median price; per subcategory: title qualifiers and
# its leaves; per leaf: product nouns.
TAXONOMY: dict[str, dict] = {
    "Beauty": {
        "brands": ["Lumiere", "Veloura", "Aurelle", "Dermacare", "Bloom & Co", "Satin Grove", "Purely Rose", "NovaSkin"],
        "adjectives": ["Hydrating", "Nourishing", "Gentle", "Radiant", "Soothing", "Lightweight", "Revitalizing", "Fragrance-Free"],
        "variants": ["30 ml", "50 ml", "100 ml", "200 ml", "Travel Size", "Value Pack"],
        "features": ["Dermatologist tested", "Free of parabens and sulfates", "Absorbs quickly without a greasy feel",
                     "Cruelty-free formula", "Suitable for all skin types", "Made with plant-based ingredients"],
        "uses": ["morning and evening routines", "dry and sensitive skin", "everyday use", "a self-care gift"],
        "price": 18.0,
        "subs": {
            "Skin Care": {
                "qualifiers": ["Shea Butter", "Hyaluronic Acid", "Vitamin C", "Aloe Vera", "Niacinamide"],
                "leaves": {
                    "Moisturizer": ["Moisturizer", "Face Cream", "Day Cream"],
                    "Cleanser": ["Foaming Cleanser", "Cleansing Gel", "Face Wash"],
                    "Serum": ["Face Serum", "Facial Oil", "Night Serum"],
                },
            },
            "Makeup": {
                "qualifiers": ["Long-Wear", "Satin Finish", "Matte", "Waterproof", "Buildable"],
                "leaves": {
                    "Lipstick": ["Lipstick", "Lip Color", "Liquid Lipstick"],
                    "Foundation": ["Foundation", "Liquid Foundation", "BB Cream"],
                    "Mascara": ["Mascara", "Lengthening Mascara", "Volumizing Mascara"],
                },
            },
            "Hair Care": {
                "qualifiers": ["Argan Oil", "Keratin", "Coconut", "Tea Tree", "Biotin"],
                "leaves": {
                    "Shampoo": ["Shampoo", "Clarifying Shampoo", "Volumizing Shampoo"],
                    "Conditioner": ["Conditioner", "Leave-In Conditioner", "Deep Conditioner"],
                    "Hair Oil": ["Hair Oil", "Hair Serum"],
                },
            },
        },
    },
    "Electronics": {
        "brands": ["Voltix", "Sonora", "Nexion", "Kirra", "Ampere Labs", "Zentro", "Bluepeak", "Orbitek"],
        "adjectives": ["Wireless", "Portable", "Compact", "Ultra-Slim", "Smart", "Rechargeable", "Pro", "Dual-Mode"],
        "variants": ["Black", "White", "Silver", "Space Gray", "Midnight Blue", "2-Pack"],
        "features": ["Bluetooth 5.3 connectivity", "USB-C fast charging", "Up to 30 hours of battery life",
                     "Backed by a 1-year warranty", "Plug and play on Windows and macOS", "Low-latency performance"],
        "uses": ["the home office", "gaming", "commuting", "travel"],
        "price": 45.0,
        "subs": {
            "Audio": {
                "qualifiers": ["Noise-Cancelling", "Hi-Fi", "Bass Boost", "Stereo", "Water-Resistant"],
                "leaves": {
                    "Headphones": ["Over-Ear Headphones", "Headphones", "On-Ear Headphones"],
                    "Earbuds": ["Earbuds", "True Wireless Earbuds", "Sport Earbuds"],
                    "Speakers": ["Bluetooth Speaker", "Speaker", "Soundbar"],
                },
            },
            "Computer Accessories": {
                "qualifiers": ["Ergonomic", "Backlit", "Full HD", "Silent-Click", "Low-Profile"],
                "leaves": {
                    "Keyboards": ["Keyboard", "Mechanical Keyboard", "Keyboard with Numeric Pad"],
                    "Mice": ["Mouse", "Gaming Mouse", "Trackball Mouse"],
                    "Webcams": ["Webcam", "HD Webcam", "Streaming Camera"],
                    "Monitor Stands": ["Monitor Stand", "Monitor Arm"],
                },
            },
            "Power & Charging": {
                "qualifiers": ["65W", "20W", "Braided", "Magnetic", "GaN"],
                "leaves": {
                    "Chargers": ["Wall Charger", "Charger", "Car Charger"],
                    "Power Banks": ["Power Bank", "Portable Battery"],
                    "Cables": ["USB-C Cable", "Charging Cable", "Lightning Cable"],
                },
            },
        },
    },
    "Home & Kitchen": {
        "brands": ["Hearthwell", "Copperleaf", "Maison Nord", "Kitchara", "Oakhaven", "Brightnest", "Larder & Co", "Ferro"],
        "adjectives": ["Nonstick", "Heavy-Duty", "Dishwasher-Safe", "Modern", "Classic", "Stackable", "Ergonomic", "Everyday"],
        "variants": ["8-Inch", "10-Inch", "12-Inch", "Set of 2", "Set of 4", "Large"],
        "features": ["Easy to clean", "Even heat distribution", "Built for years of daily cooking",
                     "BPA-free materials", "Oven safe up to 260 C", "Comfortable grip handle"],
        "uses": ["everyday cooking", "family dinners", "meal prep", "entertaining guests"],
        "price": 32.0,
        "subs": {
            "Cookware": {
                "qualifiers": ["Stainless Steel", "Cast Iron", "Ceramic", "Hard-Anodized", "Copper"],
                "leaves": {
                    "Frying Pans": ["Frying Pan", "Skillet", "Omelette Pan"],
                    "Saucepans": ["Saucepan", "Sauce Pot", "Milk Pan"],
                    "Dutch Ovens": ["Dutch Oven", "Casserole Pot"],
                },
            },
            "Kitchen Utensils": {
                "qualifiers": ["Bamboo", "Silicone", "Carbon Steel", "Olive Wood", "Japanese Steel"],
                "leaves": {
                    "Knives": ["Chef Knife", "Paring Knife", "Knife Set"],
                    "Cutting Boards": ["Cutting Board", "Chopping Board", "Butcher Block"],
                    "Spatulas": ["Spatula", "Turner", "Slotted Spatula"],
                },
            },
            "Storage & Organization": {
                "qualifiers": ["Airtight", "Glass", "Vacuum-Seal", "Clear", "Leak-Proof"],
                "leaves": {
                    "Food Containers": ["Food Storage Containers", "Meal Prep Containers", "Lunch Box"],
                    "Jars": ["Mason Jar", "Storage Jar", "Spice Jars"],
                },
            },
        },
    },
    "Sports & Outdoors": {
        "brands": ["Trailforge", "Summitra", "Peakline", "Ridgeback", "Northvale", "Kestrel", "Altura", "Wildpath"],
        "adjectives": ["Lightweight", "Waterproof", "Breathable", "Durable", "Ultralight", "Insulated", "Packable", "All-Weather"],
        "variants": ["1-Person", "2-Person", "Regular", "Long", "Olive Green", "Charcoal"],
        "features": ["Packs down small", "Tested in harsh mountain conditions", "Reinforced stitching at stress points",
                     "Comes with a carry bag", "Quick setup in minutes", "Designed by outdoor athletes"],
        "uses": ["hiking", "camping trips", "backpacking", "weekend adventures"],
        "price": 55.0,
        "subs": {
            "Camping": {
                "qualifiers": ["3-Season", "Ripstop Nylon", "Down-Filled", "Freestanding", "Compact Fold"],
                "leaves": {
                    "Tents": ["Tent", "Dome Tent", "Backpacking Tent"],
                    "Sleeping Bags": ["Sleeping Bag", "Mummy Sleeping Bag", "Sleeping Quilt"],
                    "Camp Stoves": ["Camp Stove", "Backpacking Stove"],
                },
            },
            "Hiking": {
                "qualifiers": ["Trail", "Alpine", "Carbon Fiber", "Ventilated", "Rechargeable"],
                "leaves": {
                    "Backpacks": ["Hiking Backpack", "Daypack", "Trekking Rucksack"],
                    "Trekking Poles": ["Trekking Poles", "Hiking Poles"],
                    "Headlamps": ["Headlamp", "LED Headlamp"],
                },
            },
            "Fitness": {
                "qualifiers": ["Non-Slip", "Anti-Tear", "Home Gym", "Extra Thick", "Latex-Free"],
                "leaves": {
                    "Yoga Mats": ["Yoga Mat", "Exercise Mat", "Pilates Mat"],
                    "Dumbbells": ["Dumbbell Set", "Adjustable Dumbbells"],
                    "Resistance Bands": ["Resistance Bands", "Loop Bands", "Pull-Up Assist Band"],
                },
            },
        },
    },
    "Toys & Games": {
        "brands": ["Playroo", "Tinker Town", "Brickwise", "Jolly Owl", "Wonderkin", "Funhaus", "Starbright", "Pipsqueak"],
        "adjectives": ["Educational", "Colorful", "Classic", "Interactive", "Deluxe", "Mini", "Creative", "Family"],
        "variants": ["Ages 3+", "Ages 6+", "Ages 8+", "Ages 12+", "Gift Edition", "Travel Edition"],
        "features": ["Encourages creative play", "Safety tested for children", "Hours of screen-free fun",
                     "Includes an illustrated guide", "Great for family game night", "Develops fine motor skills"],
        "uses": ["birthdays", "rainy afternoons", "family game night", "classrooms"],
        "price": 24.0,
        "subs": {
            "Games & Puzzles": {
                "qualifiers": ["Strategy", "Cooperative", "Card-Based", "Trivia", "Fantasy"],
                "leaves": {
                    "Board Games": ["Board Game", "Strategy Board Game", "Tile-Laying Game"],
                    "Party Games": ["Party Game", "Card Game", "Word Game"],
                    "Jigsaw Puzzles": ["Jigsaw Puzzle", "1000-Piece Puzzle", "Floor Puzzle"],
                },
            },
            "Building Toys": {
                "qualifiers": ["Magnetic", "STEM", "Wooden", "Motorized", "Castle"],
                "leaves": {
                    "Building Blocks": ["Building Blocks", "Block Set", "Brick Set"],
                    "Magnetic Tiles": ["Magnetic Tiles", "Magnet Building Set"],
                    "Model Kits": ["Model Kit", "Construction Kit", "Robot Kit"],
                },
            },
            "Dolls & Plush": {
                "qualifiers": ["Unicorn", "Teddy", "Princess", "Cuddly", "Fairy"],
                "leaves": {
                    "Dolls": ["Doll", "Fashion Doll", "Baby Doll"],
                    "Plush Toys": ["Plush Toy", "Stuffed Animal", "Plush Bear"],
                    "Dollhouses": ["Dollhouse", "Doll Playset"],
                },
            },
        },
    },
    "Clothing": {
        "brands": ["Northloom", "Urbana", "Threadline", "Cove & Pine", "Atelier Vega", "Harbor Lane", "Mira", "Stitchwell"],
        "adjectives": ["Slim-Fit", "Relaxed", "Classic", "Vintage", "Everyday", "Cozy", "Tailored", "Casual"],
        "variants": ["Navy", "Black", "Heather Gray", "Olive", "Burgundy", "Khaki"],
        "features": ["Machine washable", "Pre-shrunk fabric", "True to size", "Soft hand feel",
                     "Reinforced seams", "Ethically made"],
        "uses": ["the office", "weekends", "layering in autumn", "everyday wear"],
        "price": 38.0,
        "subs": {
            "Tops": {
                "qualifiers": ["Cotton", "Merino Wool", "Linen", "Organic Cotton", "Cashmere Blend"],
                "leaves": {
                    "T-Shirts": ["T-Shirt", "Crew Neck Tee", "V-Neck Tee"],
                    "Sweaters": ["Sweater", "Knit Pullover", "Cardigan"],
                    "Shirts": ["Button-Down Shirt", "Oxford Shirt", "Flannel Shirt"],
                },
            },
            "Bottoms": {
                "qualifiers": ["Stretch Denim", "Twill", "Corduroy", "Ripstop", "Chambray"],
                "leaves": {
                    "Jeans": ["Jeans", "Straight Leg Jeans", "Skinny Jeans"],
                    "Chinos": ["Chino Pants", "Chinos"],
                    "Shorts": ["Shorts", "Cargo Shorts", "Bermuda Shorts"],
                },
            },
            "Outerwear": {
                "qualifiers": ["Quilted", "Wool Blend", "Water-Repellent", "Fleece-Lined", "Down"],
                "leaves": {
                    "Jackets": ["Jacket", "Bomber Jacket", "Field Jacket"],
                    "Coats": ["Overcoat", "Parka", "Trench Coat"],
                    "Vests": ["Puffer Vest", "Vest"],
                },
            },
        },
    },
    "Pet Supplies": {
        "brands": ["Pawsome", "Furwell", "Tailtown", "Barkley", "WhiskerWorks", "Happy Hound", "Kibblewise", "Petrova"],
        "adjectives": ["Premium", "Natural", "Durable", "Vet-Approved", "Grain-Free", "Washable", "Calming", "Healthy"],
        "variants": ["Small", "Medium", "Large", "5 lb", "15 lb", "Multi-Pack"],
        "features": ["Loved by picky pets", "Vet recommended", "Made in small batches",
                     "No artificial colors or flavors", "Easy to clean", "Supports healthy digestion"],
        "uses": ["puppies and kittens", "senior pets", "indoor pets", "busy pet parents"],
        "price": 22.0,
        "subs": {
            "Dogs": {
                "qualifiers": ["Chicken", "Salmon", "Rope", "Orthopedic", "Chew-Proof"],
                "leaves": {
                    "Dog Food": ["Dry Dog Food", "Dog Food", "Wet Dog Food"],
                    "Dog Toys": ["Chew Toy", "Rope Toy", "Squeaky Dog Toy"],
                    "Dog Beds": ["Dog Bed", "Orthopedic Dog Bed", "Dog Crate Pad"],
                },
            },
            "Cats": {
                "qualifiers": ["Tuna", "Unscented", "Catnip", "Sisal", "Clumping"],
                "leaves": {
                    "Cat Litter": ["Cat Litter", "Clumping Cat Litter"],
                    "Cat Scratchers": ["Cat Scratcher", "Scratching Post", "Cat Tree"],
                    "Cat Treats": ["Cat Treats", "Crunchy Cat Treats", "Lickable Cat Treats"],
                },
            },
            "Fish & Aquatics": {
                "qualifiers": ["Freshwater", "Tropical", "Saltwater", "Quiet", "LED"],
                "leaves": {
                    "Aquariums": ["Aquarium Kit", "Fish Tank", "Nano Aquarium"],
                    "Aquarium Filters": ["Aquarium Filter", "Canister Filter"],
                    "Fish Food": ["Fish Flakes", "Fish Food Pellets"],
                },
            },
        },
    },
    "Books": {
        "brands": ["Penrose Press", "Lantern House", "Bluequill", "Meridian Books", "Oakleaf Publishing", "Northstar Press", "Silverline", "Harbor Books"],
        "adjectives": ["Illustrated", "Bestselling", "Complete", "Revised", "Pocket", "Collector's", "Annotated", "Award-Winning"],
        "variants": ["Paperback", "Hardcover", "Large Print", "First Edition", "Box Set", "Book 1"],
        "features": ["A page-turner readers cannot put down", "Praised by critics", "Includes a reading group guide",
                     "Written by an award-winning author", "With a new foreword", "Now in a new edition"],
        "uses": ["book clubs", "long flights", "bedtime reading", "curious minds"],
        "price": 14.0,
        "subs": {
            "Fiction": {
                "qualifiers": ["Midnight", "Winter", "Hidden Garden", "Lost City", "Northern Lights"],
                "leaves": {
                    "Mystery": ["Mystery Novel", "Detective Novel", "Crime Thriller"],
                    "Science Fiction": ["Science Fiction Novel", "Space Opera", "Dystopian Novel"],
                    "Romance": ["Romance Novel", "Love Story"],
                },
            },
            "Nonfiction": {
                "qualifiers": ["Ancient Rome", "Modern Science", "Leadership", "World War", "Mindfulness"],
                "leaves": {
                    "History": ["History Book", "Chronicle", "History of Empires"],
                    "Biography": ["Biography", "Memoir", "Autobiography"],
                    "Self-Help": ["Self-Help Guide", "Habit Guide", "Workbook"],
                },
            },
            "Children's Books": {
                "qualifiers": ["Dinosaur", "Bunny", "Counting", "Alphabet", "Little Dragon"],
                "leaves": {
                    "Picture Books": ["Picture Book", "Bedtime Story Book", "Board Book"],
                    "Early Readers": ["Early Reader", "Phonics Reader"],
                    "Activity Books": ["Activity Book", "Coloring Book", "Sticker Book"],
                },
            },
        },
    },
    "Automotive": {
        "brands": ["Torqline", "Drivix", "Gearhart", "Motorra", "Pitlane", "Autovia", "Steelgrip", "Axleworks"],
        "adjectives": ["Heavy-Duty", "Universal", "Premium", "All-Season", "Weatherproof", "Professional", "Quick-Install", "OEM-Grade"],
        "variants": ["for Cars and SUVs", "for Trucks", "16 oz", "Kit", "2-Pack", "Black"],
        "features": ["Fits most vehicles", "Installs in minutes without tools", "Resists UV and road salt",
                     "Trusted by professional detailers", "Compact for the glove box", "Backed by a 2-year warranty"],
        "uses": ["daily commuters", "road trips", "weekend detailing", "winter driving"],
        "price": 35.0,
        "subs": {
            "Car Care": {
                "qualifiers": ["Carnauba", "Ceramic", "pH-Neutral", "Plush", "Spray-On"],
                "leaves": {
                    "Car Wax": ["Car Wax", "Paste Wax", "Spray Wax"],
                    "Car Wash": ["Car Wash Soap", "Car Shampoo", "Foam Cannon Soap"],
                    "Microfiber Towels": ["Microfiber Towels", "Drying Towel"],
                },
            },
            "Interior Accessories": {
                "qualifiers": ["Leatherette", "Rubber", "Magnetic", "Memory Foam", "Vent Clip"],
                "leaves": {
                    "Seat Covers": ["Seat Covers", "Seat Cushion"],
                    "Floor Mats": ["Floor Mats", "All-Weather Floor Liners", "Trunk Mat"],
                    "Phone Mounts": ["Phone Mount", "Dashboard Phone Holder"],
                },
            },
            "Tools & Equipment": {
                "qualifiers": ["12V", "Lithium", "Digital", "Chrome Vanadium", "Cordless"],
                "leaves": {
                    "Jump Starters": ["Jump Starter", "Battery Booster"],
                    "Tire Inflators": ["Tire Inflator", "Air Compressor", "Tire Pressure Gauge"],
                    "Socket Sets": ["Socket Set", "Wrench Set", "Mechanic Tool Set"],
                },
            },
        },
    },
    "Grocery": {
        "brands": ["Harvest Lane", "Golden Fields", "Mountain Roast", "Pure Pantry", "Sunmeadow", "Old Mill", "Verde Farms", "Honeybrook"],
        "adjectives": ["Organic", "Gluten-Free", "Non-GMO", "Whole", "Roasted", "Unsweetened", "Natural", "Artisan"],
        "variants": ["12 oz", "16 oz", "2 lb", "Pack of 6", "Pack of 12", "Family Size"],
        "features": ["Sourced from small farms", "No artificial preservatives", "Resealable package",
                     "Rich and full-bodied flavor", "Certified organic", "Packed fresh"],
        "uses": ["breakfast", "the pantry", "healthy snacking", "weeknight dinners"],
        "price": 9.0,
        "subs": {
            "Beverages": {
                "qualifiers": ["Colombian", "Chamomile", "Dark Roast", "Matcha", "Orange"],
                "leaves": {
                    "Coffee": ["Ground Coffee", "Whole Bean Coffee", "Coffee Pods"],
                    "Tea": ["Green Tea", "Herbal Tea", "Black Tea"],
                    "Juice": ["Juice", "Cold-Pressed Juice"],
                },
            },
            "Snacks": {
                "qualifiers": ["Sea Salt", "Honey Roasted", "Dark Chocolate", "Peanut Butter", "Chili Lime"],
                "leaves": {
                    "Chips": ["Potato Chips", "Tortilla Chips", "Kettle Chips"],
                    "Nuts": ["Mixed Nuts", "Roasted Almonds", "Cashews"],
                    "Snack Bars": ["Granola Bars", "Protein Bars"],
                },
            },
            "Pantry Staples": {
                "qualifiers": ["Italian", "Extra Virgin", "Basmati", "Whole Wheat", "Stone-Ground"],
                "leaves": {
                    "Pasta": ["Spaghetti", "Penne Pasta", "Fusilli"],
                    "Cooking Oils": ["Olive Oil", "Avocado Oil"],
                    "Rice & Grains": ["Jasmine Rice", "Brown Rice", "Quinoa"],
                },
            },
        },
    },
}


@dataclass
class Leaf:
    """One leaf of the taxonomy with the vocabulary its items draw from."""

    top: str
    sub: str
    name: str
    nouns: list[str]
    qualifiers: list[str]

    @property
    def path(self) -> str:
        return f"{self.top} > {self.sub} > {self.name}"


class Uniforms:
    """Uniform [0, 1) floats from a numpy Generator, drawn in blocks.

    Handing out Python floats from a pre-drawn block keeps the per-step loop of the
    sequence simulation fast; the stream (and so the output) is fully seeded.
    """

    def __init__(self, rng: np.random.Generator, block: int = 1 << 16):
        self.rng, self.block = rng, block
        self.buf: list[float] = []
        self.pos = 0

    def next(self) -> float:
        if self.pos == len(self.buf):
            self.buf, self.pos = self.rng.random(self.block).tolist(), 0
        self.pos += 1
        return self.buf[self.pos - 1]

    def index(self, n: int) -> int:
        """An integer uniform in [0, n)."""
        return min(int(self.next() * n), n - 1)

    def pick(self, seq):
        return seq[self.index(len(seq))]

    def weighted(self, cumulative: list[float]) -> int:
        """Index drawn with probability proportional to the weights behind `cumulative`."""
        return bisect.bisect_right(cumulative, self.next() * cumulative[-1])


def list_leaves() -> list[Leaf]:
    return [
        Leaf(top, sub, leaf, nouns, sub_spec["qualifiers"])
        for top, spec in TAXONOMY.items()
        for sub, sub_spec in spec["subs"].items()
        for leaf, nouns in sub_spec["leaves"].items()
    ]


def leaf_sizes(rng: np.random.Generator, n_leaves: int, n_items: int) -> list[int]:
    """Items per leaf: a floor of MIN_ITEMS_PER_LEAF plus a lognormal share of the rest."""
    weights = rng.lognormal(0.0, 0.5, size=n_leaves)
    extra = n_items - MIN_ITEMS_PER_LEAF * n_leaves
    sizes = MIN_ITEMS_PER_LEAF + np.floor(extra * weights / weights.sum()).astype(int)
    sizes[: n_items - int(sizes.sum())] += 1  # hand out the rounding remainder
    return sizes.tolist()


def asin_like_ids(rng: np.random.Generator, n: int) -> list[str]:
    """n unique ids shaped like Amazon ASINs ("B0" + 8 of [0-9A-Z])."""
    alphabet = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        for row in alphabet[rng.integers(0, 36, size=(n - len(ids), 8))]:
            candidate = "B0" + "".join(row)
            if candidate not in seen:
                seen.add(candidate)
                ids.append(candidate)
    return ids


def make_item(u: Uniforms, rng: np.random.Generator, leaf: Leaf, brands: list[str], leaf_price: float, taken: set[str]) -> dict:
    """One item row (without id) of `leaf`; titles are re-drawn until unique."""
    spec = TAXONOMY[leaf.top]
    for _ in range(50):
        brand, adjective = u.pick(brands), u.pick(spec["adjectives"])
        noun, qualifier, variant = u.pick(leaf.nouns), u.pick(leaf.qualifiers), u.pick(spec["variants"])
        title = f"{brand} {adjective} {qualifier} {noun}, {variant}"
        if title not in taken:
            break
    taken.add(title)
    first, second = rng.choice(len(spec["features"]), size=2, replace=False).tolist()
    description = (
        f"{adjective} {noun.lower()} by {brand}. {spec['features'][first]}. "
        f"{spec['features'][second]}. Great for {u.pick(spec['uses'])}."
    )
    if u.next() < 0.02:  # real catalogs have gaps
        description = ""
    price = leaf_price * float(np.exp(0.35 * rng.standard_normal()))
    return {
        "title": title,
        "brand": brand,
        "categories": leaf.path,
        "description": description,
        "price": f"{max(price, 0.99):.2f}",
    }


def make_items(rng: np.random.Generator, u: Uniforms, leaves: list[Leaf]) -> tuple[list[dict], list[int]]:
    """All items in shuffled file order and, aligned, the index of each item's leaf."""
    sizes = leaf_sizes(rng, len(leaves), N_ITEMS)
    rows, leaf_of = [], []
    taken: set[str] = set()
    for li, (leaf, size) in enumerate(zip(leaves, sizes)):
        leaf_price = TAXONOMY[leaf.top]["price"] * float(np.exp(0.3 * rng.standard_normal()))
        # Brands specialise: each leaf is served by 3 of its top category's 8 brands.
        brands = rng.choice(TAXONOMY[leaf.top]["brands"], size=3, replace=False).tolist()
        for _ in range(size):
            rows.append(make_item(u, rng, leaf, brands, leaf_price, taken))
            leaf_of.append(li)
    order = rng.permutation(len(rows))  # file order must not leak the taxonomy
    ids = asin_like_ids(rng, len(rows))
    items = [{"item_id": ids[k], **rows[i]} for k, i in enumerate(order.tolist())]
    return items, [leaf_of[i] for i in order.tolist()]


@dataclass
class Market:
    """Popularity structure the users draw from.

    leaf_items[l]: item indices of leaf l; leaf_cum[l]: cumulative popularity over them;
    leaf_pop_cum: cumulative popularity over leaves; global_cum: over all items.
    """

    leaves: list[Leaf]
    leaf_items: list[list[int]]
    leaf_cum: list[list[float]]
    leaf_pop_cum: list[float]
    global_cum: list[float]
    siblings: list[list[int]]
    same_top: list[list[int]]


def make_market(rng: np.random.Generator, leaves: list[Leaf], leaf_of: list[int]) -> Market:
    n_items = len(leaf_of)
    leaf_items: list[list[int]] = [[] for _ in leaves]
    for item, li in enumerate(leaf_of):
        leaf_items[li].append(item)
    # Zipf-like popularity inside each leaf (rank order random), lognormal across leaves.
    item_pop = np.zeros(n_items)
    for members in leaf_items:
        ranks = rng.permutation(len(members)) + 1
        item_pop[members] = 1.0 / ranks**0.7
    leaf_pop = rng.lognormal(0.0, 0.6, size=len(leaves))
    leaf_cum = [np.cumsum(item_pop[m]).tolist() for m in leaf_items]
    global_pop = item_pop * leaf_pop[np.asarray(leaf_of)] / np.array([len(leaf_items[l]) for l in leaf_of])
    by_sub: dict[tuple[str, str], list[int]] = {}
    by_top: dict[str, list[int]] = {}
    for li, leaf in enumerate(leaves):
        by_sub.setdefault((leaf.top, leaf.sub), []).append(li)
        by_top.setdefault(leaf.top, []).append(li)
    return Market(
        leaves=leaves,
        leaf_items=leaf_items,
        leaf_cum=leaf_cum,
        leaf_pop_cum=np.cumsum(leaf_pop).tolist(),
        global_cum=np.cumsum(global_pop).tolist(),
        siblings=[by_sub[(leaf.top, leaf.sub)] for leaf in leaves],
        same_top=[by_top[leaf.top] for leaf in leaves],
    )


def draw_from_leaf(u: Uniforms, market: Market, leaf: int, seen: set[int]) -> int | None:
    """A popularity-weighted unseen item of `leaf`, or None after a few misses."""
    members, cum = market.leaf_items[leaf], market.leaf_cum[leaf]
    for _ in range(8):
        item = members[u.weighted(cum)]
        if item not in seen:
            return item
    return None


def next_leaf(u: Uniforms, market: Market, last_leaf: int, favourites: list[int], fav_cum: list[float]) -> int | None:
    """The leaf of the next item, or None for a global exploration step."""
    r = u.next()
    for move, p in TRANSITIONS:
        if r < p:
            if move == "same_leaf":
                return last_leaf
            if move == "sibling_leaf":
                return u.pick(market.siblings[last_leaf])
            if move == "favourite_leaf":
                return favourites[u.weighted(fav_cum)]
            return u.pick(market.same_top[last_leaf])
        r -= p
    return None


def user_sequence(u: Uniforms, market: Market, leaf_of: list[int], length: int) -> list[int]:
    """Item indices of one user's history, in chronological order, no repeats."""
    n_fav = 1 + u.index(3)
    favourites = [u.weighted(market.leaf_pop_cum) for _ in range(n_fav)]
    fav_cum = list(itertools.accumulate(0.2 + u.next() for _ in favourites))
    seen: set[int] = set()
    sequence: list[int] = []
    leaf: int | None = favourites[u.weighted(fav_cum)]
    while len(sequence) < length:
        item = draw_from_leaf(u, market, leaf, seen) if leaf is not None else None
        while item is None or item in seen:  # exploration, or the leaf is used up
            item = u.weighted(market.global_cum)
        seen.add(item)
        sequence.append(item)
        leaf = next_leaf(u, market, leaf_of[item], favourites, fav_cum)
    return sequence


def timestamps(u: Uniforms, length: int) -> list[int]:
    """Strictly increasing unix seconds: a random start, exponential gaps (>= 1 minute).

    Starts fall in the first 60% of the window, which leaves years for even 50 gaps.
    """
    t = T_START + int(u.next() * (T_END - T_START) * 0.6)
    out = []
    for _ in range(length):
        out.append(t)
        t += 60 + int(-MEAN_GAP_S * np.log1p(-u.next()))
    return out


def make_interactions(rng: np.random.Generator, u: Uniforms, market: Market, items: list[dict], leaf_of: list[int]) -> list[tuple[str, str, int]]:
    user_ids = [f"U{k:05d}" for k in range(1, N_USERS + 1)]
    # Sequence lengths: 5 + exponential (mean 10), capped at 50: most users short, a long tail.
    lengths = np.minimum(MIN_SEQ + np.floor(rng.exponential(10.0, size=N_USERS)), MAX_SEQ).astype(int)
    rows = []
    for user, length in zip(user_ids, lengths.tolist()):
        sequence = user_sequence(u, market, leaf_of, length)
        for item, ts in zip(sequence, timestamps(u, length)):
            rows.append((user, items[item]["item_id"], ts))
    return rows


def write_csv(path: Path, header: list[str], rows) -> None:
    """UTF-8, "\\n" line endings, minimal quoting: the same bytes on every platform."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)


def generate(out_dir: str | Path, seed: int = DEFAULT_SEED) -> dict:
    """Write out_dir/items.csv and out_dir/interactions.csv; return summary counts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    u = Uniforms(rng)
    leaves = list_leaves()
    items, leaf_of = make_items(rng, u, leaves)
    market = make_market(rng, leaves, leaf_of)
    interactions = make_interactions(rng, u, market, items, leaf_of)
    item_cols = ["item_id", "title", "brand", "categories", "description", "price"]
    write_csv(out / "items.csv", item_cols, ([it[c] for c in item_cols] for it in items))
    write_csv(out / "interactions.csv", ["user_id", "item_id", "timestamp"], interactions)
    return {
        "items": len(items),
        "leaves": len(leaves),
        "top_categories": len(TAXONOMY),
        "users": len({r[0] for r in interactions}),
        "interactions": len(interactions),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent), help="output folder (default: beside this script)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    stats = generate(args.out, args.seed)
    print(" ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
